import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { BlobNotFound, newBlobKey, type Blobs } from '../../server/blobs/blobs.js';
import { CHUNK_SIZE, SealedBlobs } from '../../server/blobs/seal.js';

/** Read a stream to the end. */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** A stream of `data` in pieces of `piece` bytes (uploads arrive in odd sizes). */
export function streamOf(data: Buffer, piece = 10_000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += piece) parts.push(data.subarray(i, i + piece));
  return Readable.from(parts);
}

/** A stream that yields `good` bytes and then fails, as an upload cut off by the client does. */
export function failingStream(good: Buffer): Readable {
  return Readable.from(
    (async function* () {
      yield good;
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('client went away');
    })(),
  );
}

/**
 * The contract every Blobs implementation keeps. `make` gives a fresh empty store; the suite closes it.
 */
export function blobsContract(make: () => Promise<Blobs>): void {
  let blobs: Blobs;
  before(async function () {
    blobs = await make();
  });
  after(async function () {
    await blobs?.close();
  });

  it('gives back exactly the bytes it was given, and knows their size', async function () {
    const data = randomBytes(150_000);
    const key = newBlobKey('test');
    expect((await blobs.put(key, streamOf(data))).size).to.equal(data.length);
    expect(await readAll(await blobs.get(key))).to.deep.equal(data);
    expect(await blobs.stat(key)).to.deep.equal({ size: data.length });
  });

  it('stores an empty blob', async function () {
    const key = newBlobKey('test');
    await blobs.put(key, Readable.from([]));
    expect(await blobs.stat(key)).to.deep.equal({ size: 0 });
    expect((await readAll(await blobs.get(key))).length).to.equal(0);
  });

  it('reads an inclusive byte range', async function () {
    const data = randomBytes(100_000);
    const key = newBlobKey('test');
    await blobs.put(key, streamOf(data));
    expect(await readAll(await blobs.get(key, { start: 10, end: 19 }))).to.deep.equal(data.subarray(10, 20));
    expect(await readAll(await blobs.get(key, { start: 99_990, end: 99_999 }))).to.deep.equal(data.subarray(99_990));
  });

  it('stores a blob larger than one upload part (multipart on S3)', async function () {
    this.timeout(60_000);
    const data = randomBytes(9 * 1024 * 1024 + 123);
    const key = newBlobKey('test');
    await blobs.put(key, streamOf(data, 256 * 1024));
    expect(await blobs.stat(key)).to.deep.equal({ size: data.length });
    const back = await readAll(await blobs.get(key));
    expect(back.equals(data)).to.equal(true);
  });

  it('lists the blobs of a kind with when they were written, and forgets a deleted one', async function () {
    const files = [newBlobKey('f'), newBlobKey('f')];
    const thumb = newBlobKey('t');
    for (const k of [...files, thumb]) await blobs.put(k, Readable.from([randomBytes(10)]));
    const listed = async (kind: string) => {
      const out = new Map<string, Date>();
      for await (const b of blobs.list(kind)) out.set(b.key, b.modified);
      return out;
    };
    const f = await listed('f');
    for (const k of files) {
      expect(f.has(k), k).to.equal(true);
      expect(Math.abs(Date.now() - f.get(k)!.getTime())).to.be.below(5 * 60_000);
    }
    expect(f.has(thumb)).to.equal(false);
    expect((await listed('t')).has(thumb)).to.equal(true);
    await blobs.delete(files[0]!);
    expect((await listed('f')).has(files[0]!)).to.equal(false);
    for (const k of [files[1]!, thumb]) await blobs.delete(k);
  });

  it('says BlobNotFound for a missing key, null from stat, and deleting it twice is fine', async function () {
    const key = newBlobKey('test');
    let caught: unknown;
    await blobs.get(key).catch((e) => (caught = e));
    expect(caught).to.be.instanceOf(BlobNotFound);
    expect(await blobs.stat(key)).to.equal(null);
    await blobs.put(key, streamOf(Buffer.from('x')));
    await blobs.delete(key);
    await blobs.delete(key);
    expect(await blobs.stat(key)).to.equal(null);
  });

  it('leaves no blob behind when the stream fails half-way', async function () {
    const key = newBlobKey('test');
    let caught: unknown;
    await blobs.put(key, failingStream(randomBytes(50_000))).catch((e) => (caught = e));
    expect(caught).to.be.instanceOf(Error);
    expect(await blobs.stat(key)).to.equal(null);
  });

  it('refuses keys it did not make, such as a path out of the store', async function () {
    for (const bad of ['../../etc/passwd', '/etc/passwd', 'test/../../x', 'a\\b', '', 'test/ab/ZZ']) {
      let caught: unknown;
      await blobs.put(bad, streamOf(Buffer.from('x'))).catch((e) => (caught = e));
      expect(caught, bad).to.be.instanceOf(Error);
      await blobs.get(bad).then(
        () => expect.fail(`get accepted ${bad}`),
        (e) => expect(e).to.be.instanceOf(Error),
      );
    }
  });

  describe('sealed with a conversation key', function () {
    const dataKey = randomBytes(32);
    let sealed: SealedBlobs;
    before(function () {
      sealed = new SealedBlobs(blobs);
    });

    it('round-trips while storing no plaintext', async function () {
      const data = Buffer.concat([Buffer.from('%PDF-1.7 a secret plan\n'), randomBytes(3 * CHUNK_SIZE + 17)]);
      const key = newBlobKey('test');
      expect((await sealed.put(dataKey, key, streamOf(data))).size).to.equal(data.length);
      const raw = await readAll(await blobs.get(key));
      expect(raw.includes(Buffer.from('a secret plan'))).to.equal(false);
      expect(raw.includes(data.subarray(1000, 1032))).to.equal(false);
      expect(await readAll(await sealed.get(dataKey, key))).to.deep.equal(data);
    });

    it('decrypts only the range asked for, across chunk boundaries', async function () {
      const data = randomBytes(3 * CHUNK_SIZE + 100);
      const key = newBlobKey('test');
      await sealed.put(dataKey, key, streamOf(data));
      const ranges: [number, number][] = [
        [0, 0],
        [CHUNK_SIZE - 5, CHUNK_SIZE + 5],
        [CHUNK_SIZE, 2 * CHUNK_SIZE - 1],
        [2 * CHUNK_SIZE + 1, data.length - 1],
        [data.length - 1, data.length - 1],
      ];
      for (const [start, end] of ranges) {
        const got = await readAll(await sealed.get(dataKey, key, { start, end }));
        expect(got.equals(data.subarray(start, end + 1)), `${start}-${end}`).to.equal(true);
      }
      // With the size known (from the attachments row) no stat is needed; same answer.
      const got = await readAll(await sealed.get(dataKey, key, { start: 5, end: CHUNK_SIZE + 5 }, data.length));
      expect(got.equals(data.subarray(5, CHUNK_SIZE + 6))).to.equal(true);
    });

    it('does not open under another conversation key', async function () {
      const key = newBlobKey('test');
      await sealed.put(dataKey, key, streamOf(randomBytes(1000)));
      let caught: unknown;
      await readAll(await sealed.get(randomBytes(32), key)).catch((e) => (caught = e));
      expect(caught).to.be.instanceOf(Error);
    });

    it('leaves no blob when the upload stream fails', async function () {
      const key = newBlobKey('test');
      let caught: unknown;
      await sealed.put(dataKey, key, failingStream(randomBytes(2 * CHUNK_SIZE))).catch((e) => (caught = e));
      expect(caught).to.be.instanceOf(Error);
      expect(await blobs.stat(key)).to.equal(null);
    });
  });
}
