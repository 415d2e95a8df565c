import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { CHUNK_SIZE, HEADER_SIZE, openStream, plainSize, sealedSize, sealStream } from '../../server/blobs/seal.js';
import { readAll, streamOf } from './contract.js';

const key = randomBytes(32);
const seal = (data: Buffer, blobKey = 'f/ab/x') => readAll(streamOf(data, 7777).pipe(sealStream(key, blobKey)));
const openAll = (sealed: Buffer, blobKey = 'f/ab/x', k = key) => readAll(Readable.from([sealed]).pipe(openStream(k, blobKey)));
async function rejects(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('sealed blob format', function () {
  const whole = CHUNK_SIZE + 16;

  it('round-trips every size around the chunk boundaries, and the sizes add up', async function () {
    for (const n of [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5]) {
      const data = randomBytes(n);
      const sealed = await seal(data);
      expect(sealed.length, `size ${n}`).to.equal(sealedSize(n));
      expect(plainSize(sealed.length), `size ${n}`).to.equal(n);
      expect((await openAll(sealed)).equals(data), `size ${n}`).to.equal(true);
    }
  });

  it('seals the same plaintext differently each time (fresh salt)', async function () {
    const data = Buffer.from('hello');
    expect((await seal(data)).equals(await seal(data))).to.equal(false);
  });

  it('detects a flipped byte', async function () {
    const sealed = await seal(randomBytes(2 * CHUNK_SIZE));
    sealed[HEADER_SIZE + 100]! ^= 1;
    expect(await rejects(openAll(sealed))).to.match(/damaged/);
  });

  it('detects a dropped tail, even one cut exactly at a chunk boundary', async function () {
    const sealed = await seal(randomBytes(3 * CHUNK_SIZE));
    expect(await rejects(openAll(sealed.subarray(0, HEADER_SIZE + 2 * whole)))).to.match(/damaged/);
    expect(await rejects(openAll(sealed.subarray(0, sealed.length - 1)))).to.match(/damaged/);
    expect(await rejects(openAll(sealed.subarray(0, 10)))).to.match(/truncated/);
  });

  it('detects swapped chunks and an appended chunk', async function () {
    const sealed = await seal(randomBytes(3 * CHUNK_SIZE));
    const h = sealed.subarray(0, HEADER_SIZE);
    const c = (i: number) => sealed.subarray(HEADER_SIZE + i * whole, HEADER_SIZE + (i + 1) * whole);
    expect(await rejects(openAll(Buffer.concat([h, c(1), c(0), c(2)])))).to.match(/damaged/);
    expect(await rejects(openAll(Buffer.concat([sealed, c(1)])))).to.match(/damaged/);
  });

  it('does not open under another blob key or another conversation key', async function () {
    const sealed = await seal(Buffer.from('for one blob only'), 'f/ab/one');
    expect(await rejects(openAll(sealed, 'f/ab/two'))).to.match(/damaged/);
    expect(await rejects(openAll(sealed, 'f/ab/one', randomBytes(32)))).to.match(/damaged/);
  });

  it('refuses bytes that are not a sealed blob', async function () {
    expect(await rejects(openAll(randomBytes(200)))).to.match(/not a sealed blob/);
  });
});
