import { S3Blobs } from '../../server/blobs/s3.js';
import { blobsContract } from './contract.js';
import { startS3 } from './local-s3.js';

describe('S3Blobs (against s3rver)', function () {
  let s3: Awaited<ReturnType<typeof startS3>> | undefined;
  before(async function () {
    s3 = await startS3();
  });
  after(async function () {
    await s3?.stop();
  });

  // s3rver accepts the fixed S3RVER/S3RVER credentials.
  blobsContract(async () =>
    new S3Blobs({ bucket: s3!.bucket, endpoint: s3!.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } }),
  );
});
