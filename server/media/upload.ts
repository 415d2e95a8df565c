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

/** What the route tells the engine before multer reads the body. */
export type UploadTarget = { dataKey: Buffer; limit: number };

/** What the engine adds to `req.file`. */
export type StoredFile = { blobKey: string; size: number; sniffed: Sniffed; imageBytes: Buffer | undefined };

const targets = new WeakMap<Request, UploadTarget>();

/** Say where this request's upload goes (its conversation key) before multer runs. */
export function setUploadTarget(req: Request, target: UploadTarget): void {
  targets.set(req, target);
}

/** A Transform that counts, enforces the size limit, sniffs the head and keeps image bytes. */
class Inspector extends Transform {
  size = 0;
  sniffed: Sniffed | undefined;
  private head: Buffer[] = [];
  private headLength = 0;
  // Kept until sniffing says "not an image" (then dropped): sharp needs the whole image.
  private kept: Buffer[] | undefined = [];

  constructor(private readonly limit: number) {
    super();
  }

  /** The whole image (once, for sharp); the pieces are let go so the bytes are held once, not twice. */
  takeImageBytes(): Buffer | undefined {
    const bytes = this.sniffed?.image && this.kept ? Buffer.concat(this.kept, this.size) : undefined;
    this.kept = undefined;
    return bytes;
  }

  private async decide(): Promise<void> {
    this.sniffed = await sniff(Buffer.concat(this.head, this.headLength));
    this.head = [];
    if (!this.sniffed.image) this.kept = undefined;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limit) return cb(errors.tooLarge(`file is larger than ${this.limit} bytes`));
    this.kept?.push(chunk);
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
      const inspector = new Inspector(target.limit);
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
