import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Blobs, ByteRange } from './blobs.js';

/**
 * Sealed blobs: AES-256-GCM in independent chunks, so a large file is encrypted and decrypted as a
 * stream (never whole in memory) and a Range request decrypts only the chunks it touches.
 *
 * Layout: header | chunk 0 | chunk 1 | … | chunk n-1, where
 *   header  = "PRLB" | version (1 byte) | 3 zero bytes | chunk size (uint32 BE) | salt (16 bytes)
 *   chunk i = ciphertext of plaintext bytes [i·C, (i+1)·C) | 16-byte GCM tag
 * Every chunk but the last holds exactly C plaintext bytes; the last holds 0..C (an empty blob is
 * one empty final chunk).
 *
 * Keys and nonces: each blob gets its own AES key, HKDF-SHA256(conversation data key, salt,
 * "parley blob v1 " + blob key). So the blob key is bound in (a blob copied under another key does
 * not open), random-nonce collisions across the conversation's blobs are not a concern, and the
 * nonce can be the chunk index (4 zero bytes | uint64 BE index) without being stored.
 * Associated data of chunk i: header | uint64 BE i | final flag (1 byte). So a reordered chunk, a
 * dropped tail (the new last chunk is not marked final), an appended chunk, or an edited header
 * all fail authentication.
 */
const MAGIC = Buffer.from('PRLB');
const VERSION = 1;
/** Bytes before the first chunk. */
export const HEADER_SIZE = 28;
const SALT = 16;
const TAG = 16;
/** 64 KiB of plaintext per chunk: 0.02 % tag overhead, and a Range read decrypts at most 128 KiB it does not send. */
export const CHUNK_SIZE = 64 * 1024;

/** Thrown (as a stream error) when sealed bytes fail authentication or are cut short. */
export class SealError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SealError';
  }
}

function chunkKey(dataKey: Buffer, salt: Buffer, blobKey: string): Buffer {
  if (dataKey.length !== 32) throw new Error('data key must be 32 bytes');
  return Buffer.from(hkdfSync('sha256', dataKey, salt, `parley blob v1 ${blobKey}`, 32));
}

function nonceOf(index: number): Buffer {
  const n = Buffer.alloc(12);
  n.writeBigUInt64BE(BigInt(index), 4);
  return n;
}

function aadOf(header: Buffer, index: number, final: boolean): Buffer {
  const a = Buffer.alloc(HEADER_SIZE + 9);
  header.copy(a, 0);
  a.writeBigUInt64BE(BigInt(index), HEADER_SIZE);
  a[HEADER_SIZE + 8] = final ? 1 : 0;
  return a;
}

function parseHeader(header: Buffer): { chunkSize: number; salt: Buffer } {
  if (header.length !== HEADER_SIZE || !header.subarray(0, 4).equals(MAGIC) || header[4] !== VERSION) {
    throw new SealError('not a sealed blob');
  }
  const chunkSize = header.readUInt32BE(8);
  if (chunkSize < 1 || chunkSize > 16 * 1024 * 1024) throw new SealError('sealed blob has a bad chunk size');
  return { chunkSize, salt: header.subarray(12, 12 + SALT) };
}

/** Stored size of a plaintext of `plain` bytes. */
export function sealedSize(plain: number, chunkSize = CHUNK_SIZE): number {
  const chunks = Math.max(1, Math.ceil(plain / chunkSize));
  return HEADER_SIZE + plain + chunks * TAG;
}

/** Plaintext size of a sealed blob of `sealed` bytes (the inverse of `sealedSize`). */
export function plainSize(sealed: number, chunkSize = CHUNK_SIZE): number {
  const chunks = Math.ceil((sealed - HEADER_SIZE) / (chunkSize + TAG));
  return sealed - HEADER_SIZE - chunks * TAG;
}

/** A Transform from plaintext to the sealed layout above, for the blob stored under `blobKey`. */
export function sealStream(dataKey: Buffer, blobKey: string, chunkSize = CHUNK_SIZE): Transform {
  const salt = randomBytes(SALT);
  const header = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(header, 0);
  header[4] = VERSION;
  header.writeUInt32BE(chunkSize, 8);
  salt.copy(header, 12);
  const key = chunkKey(dataKey, salt, blobKey);
  let index = 0;
  let pending: Buffer[] = [];
  let pendingLength = 0;
  let headerSent = false;

  const sealChunk = (plain: Buffer, final: boolean): Buffer => {
    const cipher = createCipheriv('aes-256-gcm', key, nonceOf(index));
    cipher.setAAD(aadOf(header, index, final));
    index++;
    return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  };

  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      if (!headerSent) {
        this.push(header);
        headerSent = true;
      }
      pending.push(chunk);
      pendingLength += chunk.length;
      // Strictly more than one chunk buffered: only then is the next chunk known not to be the last.
      if (pendingLength > chunkSize) {
        let all = Buffer.concat(pending, pendingLength);
        while (all.length > chunkSize) {
          this.push(sealChunk(all.subarray(0, chunkSize), false));
          all = all.subarray(chunkSize);
        }
        pending = [all];
        pendingLength = all.length;
      }
      cb();
    },
    flush(cb: TransformCallback) {
      if (!headerSent) this.push(header);
      this.push(sealChunk(Buffer.concat(pending, pendingLength), true));
      cb();
    },
  });
}

/**
 * A Transform from sealed bytes to plaintext. Without options it reads a whole blob, header first.
 * For a range: pass the `header` read separately, the index of the first chunk in the input, and
 * whether the input ends with the blob's final chunk.
 */
export function openStream(
  dataKey: Buffer,
  blobKey: string,
  options: { header?: Buffer; firstChunk?: number; endsWithFinal?: boolean } = {},
): Transform {
  let header: Buffer | undefined;
  let key: Buffer | undefined;
  let chunkSize = 0;
  let index = options.firstChunk ?? 0;
  const endsWithFinal = options.endsWithFinal ?? true;
  let pending: Buffer = Buffer.alloc(0);

  const start = (h: Buffer) => {
    const parsed = parseHeader(h);
    header = Buffer.from(h);
    chunkSize = parsed.chunkSize;
    key = chunkKey(dataKey, parsed.salt, blobKey);
  };
  if (options.header) start(options.header);

  const openChunk = (sealed: Buffer, final: boolean): Buffer => {
    if (sealed.length < TAG) throw new SealError('sealed blob is truncated');
    const decipher = createDecipheriv('aes-256-gcm', key!, nonceOf(index));
    decipher.setAAD(aadOf(header!, index, final));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
    index++;
    try {
      return Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - TAG)), decipher.final()]);
    } catch {
      throw new SealError('sealed blob is damaged, truncated or not under this key');
    }
  };

  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      try {
        pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
        if (!header) {
          if (pending.length < HEADER_SIZE) return cb();
          start(pending.subarray(0, HEADER_SIZE));
          pending = pending.subarray(HEADER_SIZE);
        }
        const whole = chunkSize + TAG;
        // Keep at least one chunk back until the end: the last one is opened as final.
        while (pending.length > whole) {
          this.push(openChunk(pending.subarray(0, whole), false));
          pending = pending.subarray(whole);
        }
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
    flush(cb: TransformCallback) {
      try {
        if (!header) throw new SealError('sealed blob is truncated');
        this.push(openChunk(pending, endsWithFinal));
        cb();
      } catch (err) {
        cb(err as Error);
      }
    },
  });
}

/** A Transform that skips `skip` bytes, then passes `take` bytes and drops the rest. */
function slice(skip: number, take: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      let c = chunk;
      if (skip > 0) {
        const s = Math.min(skip, c.length);
        c = c.subarray(s);
        skip -= s;
      }
      if (take > 0 && c.length > 0) {
        const t = Math.min(take, c.length);
        this.push(c.subarray(0, t));
        take -= t;
      }
      cb();
    },
  });
}

/** Pipe `source` through `stages`; unlike .pipe(), an error anywhere reaches the returned stream, and destroying it stops the source. */
function chain(source: Readable, ...stages: Transform[]): Readable {
  const all: Readable[] = [source, ...stages];
  for (let i = 0; i < all.length - 1; i++) {
    const from = all[i]!;
    const to = all[i + 1] as Transform;
    from.on('error', (e) => to.destroy(e));
    from.pipe(to);
  }
  const out = all[all.length - 1]!;
  out.on('close', () => {
    for (const s of all) if (!s.destroyed) s.destroy();
  });
  return out;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A blob store whose content is sealed with a conversation's data key on the way in and opened on the way out. */
export class SealedBlobs {
  constructor(readonly store: Blobs) {}

  /** Seal and store `plaintext`; resolves with the plaintext size. Leaves no blob if anything fails. */
  async put(dataKey: Buffer, blobKey: string, plaintext: Readable): Promise<{ size: number }> {
    let size = 0;
    const counted = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        cb(null, chunk);
      },
    });
    const sealer = sealStream(dataKey, blobKey);
    // The store consumes the end of the chain; pipeline() destroys every stage if any one fails,
    // so an error in the source reaches store.put as a stream error and it removes what it wrote.
    const stored = this.store.put(blobKey, sealer);
    // A store that fails stops reading; destroying the sealer keeps pipeline() from waiting forever.
    stored.catch((err: Error) => sealer.destroy(err));
    const piped = pipeline(plaintext, counted, sealer);
    const [putResult, pipeResult] = await Promise.allSettled([stored, piped]);
    if (pipeResult.status === 'rejected' || putResult.status === 'rejected') {
      await this.store.delete(blobKey).catch(() => undefined);
      throw pipeResult.status === 'rejected' ? pipeResult.reason : (putResult as PromiseRejectedResult).reason;
    }
    return { size };
  }

  /**
   * Open a sealed blob as a plaintext stream, or the inclusive plaintext `range` of it (decrypting
   * only the chunks it touches). `size` is the plaintext size when the caller knows it (saves a stat).
   * Rejects with BlobNotFound if there is none; authentication failures are stream errors.
   */
  async get(dataKey: Buffer, blobKey: string, range?: ByteRange, size?: number): Promise<Readable> {
    if (!range) return chain(await this.store.get(blobKey), openStream(dataKey, blobKey));
    const header = await readAll(await this.store.get(blobKey, { start: 0, end: HEADER_SIZE - 1 }));
    const { chunkSize } = parseHeader(header);
    let total = size;
    if (total === undefined) {
      const stat = await this.store.stat(blobKey);
      total = plainSize(stat?.size ?? sealedSize(0, chunkSize), chunkSize);
    }
    const chunks = Math.max(1, Math.ceil(total / chunkSize));
    const first = Math.floor(range.start / chunkSize);
    const last = Math.min(chunks - 1, Math.floor(range.end / chunkSize));
    const whole = chunkSize + TAG;
    const stored = await this.store.get(blobKey, {
      start: HEADER_SIZE + first * whole,
      end: Math.min(sealedSize(total, chunkSize), HEADER_SIZE + (last + 1) * whole) - 1,
    });
    const opener = openStream(dataKey, blobKey, { header, firstChunk: first, endsWithFinal: last === chunks - 1 });
    const cut = slice(range.start - first * chunkSize, range.end - range.start + 1);
    return chain(stored, opener, cut);
  }
}
