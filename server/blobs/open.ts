import type { Config } from '../config.js';
import type { Blobs } from './blobs.js';
import { DiskBlobs } from './disk.js';

/** The blob store the configuration asks for: S3 when S3_BUCKET is set, else the BLOB_DIR directory. */
export async function openBlobs(config: Pick<Config, 'blobDir' | 's3'>): Promise<Blobs> {
  if (config.s3) {
    // Loaded only when configured: the AWS SDK adds tens of MB of resident memory to every node.
    const { S3Blobs } = await import('./s3.js');
    return new S3Blobs({ bucket: config.s3.bucket, endpoint: config.s3.endpoint, region: config.s3.region });
  }
  return DiskBlobs.open(config.blobDir);
}
