import { parseArgs } from 'node:util';
import { openBlobs } from './blobs/open.js';
import { loadConfig } from './config.js';
import { Archive } from './core/archive.js';
import { Keyring } from './core/keys.js';
import { openDatabase, resolveMasterKey } from './deps.js';
import { createLogger } from './log.js';
import { Store } from './store/store.js';

/**
 * `npm run archive -- --older-than DAYS`: move messages older than DAYS (default ARCHIVE_AFTER_DAYS,
 * else 90) out of the messages table into sealed archive blobs, then exit. For a scheduler (Heroku
 * Scheduler, cron); safe beside running nodes and beside another run.
 */
const { values } = parseArgs({ options: { 'older-than': { type: 'string' } } });
const config = loadConfig();
const log = createLogger(config.logLevel);
const days = Number(values['older-than'] ?? config.archiveAfterDays ?? 90);
if (!Number.isFinite(days) || days < 0) {
  log.fatal('--older-than must be a number of days');
  process.exit(2);
}
const db = await openDatabase(config, log);
const blobs = await openBlobs(config);
try {
  const archive = new Archive(new Store(db), blobs, new Keyring(resolveMasterKey(config, log), config.previousMasterKeys), log);
  const report = await archive.run(new Date(Date.now() - days * 86_400_000));
  log.info({ ...report, days }, 'archive run done');
  if (report.failed > 0) process.exitCode = 1; // logged above; the next run retries them
} finally {
  await blobs.close();
  await db.close();
}
