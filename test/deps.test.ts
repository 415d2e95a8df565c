import { expect } from 'chai';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../server/config.js';
import { resolveMasterKey } from '../server/deps.js';

describe('the data directory', () => {
  it('is created for the owner only (0700), with the generated master key in it', () => {
    const parent = mkdtempSync(path.join(os.tmpdir(), 'parley-data-'));
    try {
      const dataDir = path.join(parent, 'data');
      resolveMasterKey(loadConfig({ DATA_DIR: dataDir }), pino({ level: 'silent' }));
      expect((statSync(dataDir).mode & 0o777).toString(8)).to.equal('700');
      expect((statSync(path.join(dataDir, 'master.key')).mode & 0o777).toString(8)).to.equal('600');
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });
});
