import type { Config } from '../config.js';
import type { Blobs } from './blobs.js';
import { DiskBlobs } from './disk.js';
import { S3Blobs } from './s3.js';

/** The blob store the configuration asks for: S3 when S3_BUCKET is set, else the BLOB_DIR directory. */
export async function openBlobs(config: Pick<Config, 'blobDir' | 's3'>): Promise<Blobs> {
  if (config.s3) return new S3Blobs({ bucket: config.s3.bucket, endpoint: config.s3.endpoint, region: config.s3.region });
  return DiskBlobs.open(config.blobDir);
}
