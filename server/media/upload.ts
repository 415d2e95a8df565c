import type { Request } from 'express';
import type { StorageEngine } from 'multer';
import { Transform, type TransformCallback } from 'node:stream';
import { newBlobKey } from '../blobs/blobs.js';
import type { SealedBlobs } from '../blobs/seal.js';
import { errors } from '../core/errors.js';
import { sniff, SNIFF_BYTES, type Sniffed } from './sniff.js';

/**
 * The upload path: a multer StorageEngine that streams the file part straight into a sealed blob.
 * Nothing is written in plaintext anywhere; memory holds the sniffing head (64 KiB) and, for images
 * only, the file itself (bounded by the upload limit) because sharp needs the whole image.
 */

/** What the route tells the engine before multer reads the body: the key, the limit, and the request's Content-Length if any. */
export type UploadTarget = { dataKey: Buffer; limit: number; expected?: number };

/** What the engine adds to `req.file`. */
export type StoredFile = { blobKey: string; size: number; sniffed: Sniffed; imageBytes: Buffer | undefined };

const targets = new WeakMap<Request, UploadTarget>();

/** Say where this request's upload goes (its conversation key) before multer runs. */
export function setUploadTarget(req: Request, target: UploadTarget): void {
  targets.set(req, target);
}

/**
 * A Transform that counts, enforces the size limit, sniffs the head and keeps image bytes.
 * Image bytes are copied into one buffer as they arrive, 64 KiB at a time: joining a 17 MB upload
 * at the end with Buffer.concat held the event loop for over 100 ms (seen in bench/media.ts
 * profiles). The buffer is reserved at the expected size (Content-Length, at most the limit);
 * allocUnsafe leaves pages untouched until written, so resident memory follows the bytes received.
 */
class Inspector extends Transform {
  size = 0;
  sniffed: Sniffed | undefined;
  private head: Buffer[] = [];
  private headLength = 0;
  // The file so far while it may be an image; dropped as soon as sniffing says it is not.
  private image: Buffer | undefined;

  constructor(
    private readonly limit: number,
    expected: number,
  ) {
    super();
    this.image = Buffer.allocUnsafe(Math.max(SNIFF_BYTES, Math.min(limit, expected)));
  }

  /** The whole image (once, for sharp), or undefined when the file is not an image. */
  takeImageBytes(): Buffer | undefined {
    const bytes = this.sniffed?.image && this.image ? this.image.subarray(0, this.size) : undefined;
    this.image = undefined;
    return bytes;
  }

  private keep(chunk: Buffer, at: number): void {
    if (!this.image) return;
    if (at + chunk.length > this.image.length) {
      // Content-Length was too small a guess (or absent): grow once to the limit.
      const bigger = Buffer.allocUnsafe(Math.min(this.limit, Math.max(2 * this.image.length, at + chunk.length)));
      this.image.copy(bigger, 0, 0, at);
      this.image = bigger;
    }
    chunk.copy(this.image, at);
  }

  private async decide(): Promise<void> {
    this.sniffed = await sniff(Buffer.concat(this.head, this.headLength));
    this.head = [];
    if (!this.sniffed.image) this.image = undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const at = this.size;
    this.size += chunk.length;
    if (this.size > this.limit) return cb(errors.tooLarge(`file is larger than ${this.limit} bytes`));
    this.keep(chunk, at);
    if (this.sniffed) return cb(null, chunk);
    this.head.push(chunk);
    this.headLength += chunk.length;
    if (this.headLength < SNIFF_BYTES) return cb(null, chunk);
    this.decide().then(() => cb(null, chunk), cb);
  }

  override _flush(cb: TransformCallback): void {
    if (this.sniffed) return cb();
    this.decide().then(() => cb(), cb);
  }
}

/** The multer StorageEngine over sealed blobs. */
export function sealedStorage(blobs: SealedBlobs): StorageEngine {
  return {
    _handleFile(req, file, cb) {
      const target = targets.get(req as Request);
      if (!target) {
        file.stream.resume();
        cb(new Error('upload target not set: setUploadTarget must run before multer'));
        return;
      }
      const key = newBlobKey('f');
      const inspector = new Inspector(target.limit, target.expected ?? target.limit);
      // busboy stops at the limit and says so; make that an error, so the blob is removed.
      file.stream.once('limit', () => inspector.destroy(errors.tooLarge(`file is larger than ${target.limit} bytes`)));
      file.stream.pipe(inspector);
      file.stream.once('error', (err: Error) => inspector.destroy(err));
      blobs.put(target.dataKey, key, inspector).then(
        () => {
          const stored: StoredFile = { blobKey: key, size: inspector.size, sniffed: inspector.sniffed!, imageBytes: inspector.takeImageBytes() };
          cb(null, stored as unknown as Partial<Express.Multer.File>);
        },
        (err: Error) => {
          file.stream.resume(); // drain what is left so the request can finish
          cb(err);
        },
      );
    },
    _removeFile(_req, file, cb) {
      const stored = file as unknown as Partial<StoredFile>;
      if (!stored.blobKey) return cb(null);
      blobs.store.delete(stored.blobKey).then(() => cb(null), cb);
    },
  };
}

/**
 * The same path for a raw body (an XEP-0363 PUT, a re-sealed file): stream it into a new sealed blob
 * under `dataKey`, counting, enforcing the limit and sniffing as the multipart path does. On failure
 * no blob is left (SealedBlobs.put) and the error goes on.
 */
export async function storeStream(blobs: SealedBlobs, dataKey: Buffer, body: NodeJS.ReadableStream, limit: number, expected = limit): Promise<StoredFile> {
  const key = newBlobKey('f');
  const inspector = new Inspector(limit, expected);
  body.once('error', (err: Error) => inspector.destroy(err));
  body.pipe(inspector);
  await blobs.put(dataKey, key, inspector);
  return { blobKey: key, size: inspector.size, sniffed: inspector.sniffed!, imageBytes: inspector.takeImageBytes() };
}
