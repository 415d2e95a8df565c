import { expect } from 'chai';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
