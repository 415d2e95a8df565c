import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { Readable } from 'node:stream';
import { assertBlobKey, BlobNotFound, isBlobKey, type BlobStat, type Blobs, type ByteRange } from './blobs.js';

// 8 MiB parts: S3 wants at least 5 MiB per part but the last, and at most 10,000 parts; 8 MiB
// allows 80 GB objects while one upload in flight holds at most one part in memory.
const PART_SIZE = 8 * 1024 * 1024;

/** Where the S3-compatible store is; credentials come from the usual AWS variables unless given. */
export type S3BlobsOptions = {
  bucket: string;
  endpoint?: string | undefined;
  region: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
};

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}

/** Blobs in an S3 bucket (AWS, MinIO, Ceph, R2, s3rver…): one object per key. */
export class S3Blobs implements Blobs {
  private readonly client: S3Client;
  private readonly bucket: string;

  constructor(options: S3BlobsOptions) {
    this.bucket = options.bucket;
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      // Other S3-compatible stores serve buckets by path, not by virtual host name.
      forcePathStyle: Boolean(options.endpoint),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      // The SDK's default CRC trailers (aws-chunked bodies) are not understood by many
      // S3-compatible stores; GCM tags already protect every byte end to end.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  async put(key: string, body: Readable): Promise<BlobStat> {
    assertBlobKey(key);
    let size = 0;
    let bodyFailed: { err: unknown } | undefined;
    async function* counted(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of body) {
          const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
          size += b.length;
          yield b;
        }
      } catch (err) {
        bodyFailed = { err };
        throw err;
      }
    }
    // lib-storage sends a blob of one part as one PUT, which S3 applies atomically, and a larger
    // one as a multipart upload, which it aborts if the stream or a part fails (an unfinished
    // upload is invisible to readers but costs storage). One part in flight at a time.
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: Readable.from(counted()) },
      partSize: PART_SIZE,
      queueSize: 1,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (err) {
      // When the abort itself fails, lib-storage throws its error: the caller needs the stream's
      // (a client gone mid-upload is the client's fault, not the store's).
      throw bodyFailed ? bodyFailed.err : err;
    }
    return { size };
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    assertBlobKey(key);
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }),
      );
      if (!res.Body) return Readable.from([]);
      return res.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFound(key);
      // A range starting past the end: the disk store answers no bytes, so does this one.
      if ((err as { name?: string }).name === 'InvalidRange') return Readable.from([]);
      throw err;
    }
  }

  async stat(key: string): Promise<BlobStat | null> {
    assertBlobKey(key);
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: res.ContentLength ?? 0 };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async *list(kind: string): AsyncIterable<{ key: string; modified: Date }> {
    if (!/^[a-z]{1,16}$/.test(kind)) throw new Error(`invalid blob kind ${JSON.stringify(kind)}`);
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: `${kind}/`, ...(token ? { ContinuationToken: token } : {}) }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key && isBlobKey(o.Key)) yield { key: o.Key, modified: o.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    assertBlobKey(key);
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
