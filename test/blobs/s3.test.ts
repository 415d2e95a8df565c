import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { newBlobKey } from '../../server/blobs/blobs.js';
import { S3Blobs } from '../../server/blobs/s3.js';
import { blobsContract, failingStream } from './contract.js';
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
  const make = async () =>
    new S3Blobs({ bucket: s3!.bucket, endpoint: s3!.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  blobsContract(make);

  it('a stream cut off after a multipart upload began fails with its own error, even when the abort is refused, and leaves no blob', async function () {
    this.timeout(60_000);
    // s3rver does not implement AbortMultipartUpload: the refusal must not hide why the upload failed.
    const blobs = await make();
    try {
      const key = newBlobKey('test');
      let caught: unknown;
      await blobs.put(key, failingStream(randomBytes(9 * 1024 * 1024))).catch((e) => (caught = e));
      expect((caught as Error | undefined)?.message).to.equal('client went away');
      expect(await blobs.stat(key)).to.equal(null);
    } finally {
      await blobs.close();
    }
  });
});
