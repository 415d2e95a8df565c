import { expect } from 'chai';
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { newBlobKey } from '../../server/blobs/blobs.js';
import { DiskBlobs } from '../../server/blobs/disk.js';
import { blobsContract } from './contract.js';

describe('DiskBlobs', function () {
  const dirs: string[] = [];
  after(async function () {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const make = async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'parley-blobs-'));
    dirs.push(dir);
    return DiskBlobs.open(dir);
  };

  blobsContract(make);

  it('creates its directories for the owner only (0700; they were world-readable)', async function () {
    const parent = await mkdtemp(path.join(tmpdir(), 'parley-blobs-'));
    dirs.push(parent);
    const blobs = await DiskBlobs.open(path.join(parent, 'blobs'));
    await blobs.put(newBlobKey('f'), Readable.from([Buffer.from('hello')]));
    const modes = [];
    for (const d of await readdir(blobs.dir, { recursive: true })) {
      const st = await stat(path.join(blobs.dir, d));
      if (st.isDirectory()) modes.push((st.mode & 0o777).toString(8));
    }
    modes.push(((await stat(blobs.dir)).mode & 0o777).toString(8));
    expect(modes.length).to.be.at.least(4); // the root, .tmp, f/, f/xx/
    expect(new Set(modes)).to.deep.equal(new Set(['700']));
    await blobs.close();
  });

  it('sweeps temporary files a crash left behind, and only old ones', async function () {
    const blobs = await make();
    const tmp = path.join(blobs.dir, '.tmp');
    await writeFile(path.join(tmp, 'old.part'), 'x');
    await writeFile(path.join(tmp, 'young.part'), 'x');
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(path.join(tmp, 'old.part'), twoHoursAgo, twoHoursAgo);
    const reopened = await DiskBlobs.open(blobs.dir);
    expect(await readdir(tmp)).to.deep.equal(['young.part']);
    await reopened.close();
    await blobs.close();
  });
});
