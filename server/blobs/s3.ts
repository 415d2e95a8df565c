import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
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
    let parts: Buffer[] = [];
    let buffered = 0;
    let total = 0;
    let uploadId: string | undefined;
    const done: { ETag: string; PartNumber: number }[] = [];

    const flushPart = async () => {
      const part = Buffer.concat(parts, buffered);
      parts = [];
      buffered = 0;
      if (!uploadId) {
        const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
        uploadId = created.UploadId;
        if (!uploadId) throw new Error('S3 gave no UploadId');
      }
      const PartNumber = done.length + 1;
      const res = await this.client.send(
        new UploadPartCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, PartNumber, Body: part, ContentLength: part.length }),
      );
      done.push({ ETag: res.ETag ?? '', PartNumber });
    };

    try {
      for await (const chunk of body) {
        const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
        parts.push(b);
        buffered += b.length;
        total += b.length;
        if (buffered >= PART_SIZE) await flushPart();
      }
      if (!uploadId) {
        // Small blob: one PUT, which S3 applies atomically.
        const whole = Buffer.concat(parts, buffered);
        await this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: whole, ContentLength: whole.length }),
        );
        return { size: total };
      }
      if (buffered > 0) await flushPart();
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: done } }),
      );
      return { size: total };
    } catch (err) {
      // An unfinished multipart upload is invisible to readers but costs storage until aborted.
      if (uploadId) {
        await this.client
          .send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }))
          .catch(() => undefined);
      }
      throw err;
    }
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
