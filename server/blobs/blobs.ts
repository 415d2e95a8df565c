import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';

/**
 * Blob storage: opaque bytes under server-made keys. Two implementations (disk.ts, s3.ts) pass one
 * contract suite (test/blobs/contract.ts). Stores see only sealed bytes; sealing lives in seal.ts.
 */

/** An inclusive byte range, as HTTP's `Range: bytes=start-end` counts. */
export type ByteRange = { start: number; end: number };

/** What a store knows about one blob. */
export type BlobStat = { size: number };

/** The one interface every blob store implements. */
export interface Blobs {
  /**
   * Store the stream under `key`. Atomic: readers see the whole blob or nothing, and a stream that
   * errors leaves nothing behind (no partial blob). Resolves with the number of bytes stored.
   */
  put(key: string, body: Readable): Promise<BlobStat>;
  /** Read the blob, or the inclusive `range` of it. Rejects with BlobNotFound if there is none. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** Size of the blob, or null if there is none. */
  stat(key: string): Promise<BlobStat | null>;
  /**
   * Every blob whose key starts with `kind/` (as `newBlobKey(kind)` and the archive make them),
   * with the time it was written; in no particular order. For sweeping blobs nothing refers to.
   */
  list(kind: string): AsyncIterable<{ key: string; modified: Date }>;
  /** Remove the blob; removing a missing blob is not an error (deletes are retried). */
  delete(key: string): Promise<void>;
  /** Release connections and handles. */
  close(): Promise<void>;
}

/** Thrown by `get` for a key with no blob. */
export class BlobNotFound extends Error {
  constructor(readonly key: string) {
    super(`no blob under ${key}`);
    this.name = 'BlobNotFound';
  }

  /**
   * True for a BlobNotFound from any copy of this module: the S3 store is loaded lazily, and a loader
   * (tsx in tests) may give it its own instance of this class, so `instanceof` alone is not enough.
   */
  static is(err: unknown): err is BlobNotFound {
    return err instanceof BlobNotFound || (err instanceof Error && err.name === 'BlobNotFound');
  }
}

// Keys are made here, never taken from user input; the pattern is the second line of defence that
// keeps a key from naming a path outside the store (no "..", no leading "/", no backslash).
const KEY_PATTERN = /^[a-z]{1,16}(\/[0-9a-f]{2})?\/[0-9a-f]{32}(\.[a-z0-9]{1,16})?$/;

/** A fresh key: `kind/ab/ab…` (128 random bits; the two-character fan-out keeps directories small). */
export function newBlobKey(kind: string, suffix?: string): string {
  const id = randomBytes(16).toString('hex');
  const key = `${kind}/${id.slice(0, 2)}/${id}${suffix ? `.${suffix}` : ''}`;
  assertBlobKey(key);
  return key;
}

/** Whether `key` has the shape `newBlobKey` makes. */
export function isBlobKey(key: string): boolean {
  return KEY_PATTERN.test(key);
}

/** Throw unless `key` has the shape `newBlobKey` makes. */
export function assertBlobKey(key: string): void {
  if (!KEY_PATTERN.test(key)) throw new Error(`invalid blob key ${JSON.stringify(key)}`);
}
