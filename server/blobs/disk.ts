import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { assertBlobKey, BlobNotFound, isBlobKey, type BlobStat, type Blobs, type ByteRange } from './blobs.js';

// A temporary file older than this was left by a crash: an upload in progress on another node
// sharing the directory writes continuously, and even a 2 GB upload at 1 MB/s finishes within it.
const STALE_TEMP_MS = 60 * 60 * 1000;

/** Blobs in a directory: one file per key, written to `.tmp/` first and renamed into place. */
export class DiskBlobs implements Blobs {
  private constructor(readonly dir: string) {}

  /** Create the directory if needed and sweep temporary files a crash left behind. */
  static async open(dir: string): Promise<DiskBlobs> {
    const root = path.resolve(dir);
    // 0700: the blobs are sealed, but their names and sizes are nobody else's business either.
    await mkdir(path.join(root, '.tmp'), { recursive: true, mode: 0o700 });
    const blobs = new DiskBlobs(root);
    await blobs.sweepTemp(STALE_TEMP_MS);
    return blobs;
  }

  /** Remove temporary files older than `ageMs`. */
  async sweepTemp(ageMs: number): Promise<number> {
    const tmp = path.join(this.dir, '.tmp');
    let removed = 0;
    for (const name of await readdir(tmp)) {
      const file = path.join(tmp, name);
      const s = await stat(file).catch(() => null);
      if (s && Date.now() - s.mtimeMs > ageMs) {
        await rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }

  private fileOf(key: string): string {
    assertBlobKey(key);
    return path.join(this.dir, ...key.split('/'));
  }

  async put(key: string, body: Readable): Promise<BlobStat> {
    const file = this.fileOf(key);
    const tmp = path.join(this.dir, '.tmp', `${randomBytes(12).toString('hex')}.part`);
    try {
      // flush: fsync before close, so the rename below never publishes a file whose bytes are
      // still only in the page cache.
      const out = createWriteStream(tmp, { flags: 'wx', flush: true });
      await pipeline(body, out);
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await rename(tmp, file);
      return { size: out.bytesWritten };
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const file = this.fileOf(key);
    // Open first, so a missing blob is a rejected promise rather than an error event later.
    const handle = await open(file, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new BlobNotFound(key) : err;
    });
    return handle.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  async stat(key: string): Promise<BlobStat | null> {
    const s = await stat(this.fileOf(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    return s ? { size: s.size } : null;
  }

  async *list(kind: string): AsyncIterable<{ key: string; modified: Date }> {
    if (!/^[a-z]{1,16}$/.test(kind)) throw new Error(`invalid blob kind ${JSON.stringify(kind)}`);
    const walk = async function* (dir: string, key: string): AsyncGenerator<{ key: string; modified: Date }> {
      const entries = await readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return [];
        throw err;
      });
      for (const e of entries) {
        const child = `${key}/${e.name}`;
        if (e.isDirectory()) yield* walk(path.join(dir, e.name), child);
        else if (e.isFile() && isBlobKey(child)) {
          const s = await stat(path.join(dir, e.name)).catch(() => null);
          if (s) yield { key: child, modified: s.mtime };
        }
      }
    };
    yield* walk(path.join(this.dir, kind), kind);
  }

  async delete(key: string): Promise<void> {
    await unlink(this.fileOf(key)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }

  async close(): Promise<void> {}
}
