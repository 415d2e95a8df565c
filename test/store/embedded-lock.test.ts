import { expect } from 'chai';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedDatabase } from '../../server/store/embedded.js';

describe('the embedded database directory lock', function () {
  this.timeout(60_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'parley-lock-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a second open of a directory in use, and allows it once the first is closed', async () => {
    const db = path.join(dir, 'db');
    const first = await EmbeddedDatabase.open(db);
    try {
      await EmbeddedDatabase.open(db).then(
        () => expect.fail('a second open must be refused'),
        (err: Error) => expect(err.message).to.contain(`is in use by process ${process.pid}`),
      );
      expect((await first.query<{ x: number }>('SELECT 1 AS x'))[0]!.x).to.equal(1); // the first is unharmed
    } finally {
      await first.close();
    }
    expect(existsSync(`${db}.lock`)).to.equal(false);
    const again = await EmbeddedDatabase.open(db);
    await again.close();
  });

  it('takes over a lock left by a process that is gone, or by an earlier process that had this pid', async () => {
    const db = path.join(dir, 'db');
    writeFileSync(`${db}.lock`, '999999999'); // no such process
    const opened = await EmbeddedDatabase.open(db);
    await opened.close();
    // a container restarted on a kept volume runs as the same pid (often 1) as the one that died
    writeFileSync(`${db}.lock`, String(process.pid));
    const again = await EmbeddedDatabase.open(db);
    await again.close();
  });
});
