import { parseArgs } from 'node:util';
import { openBlobs } from './blobs/open.js';
import { loadConfig } from './config.js';
import { sweepOrphanBlobs } from './core/sweep.js';
import { openDatabase } from './deps.js';
import { createLogger } from './log.js';
import { Store } from './store/store.js';

/**
 * `npm run sweep-blobs -- [--older-than-hours 24] [--dry-run]`: remove stored files, thumbnails
 * and archive chunks that no row refers to (left by crashes), then exit. For a daily scheduler;
 * safe beside running nodes (blobs younger than an hour are never considered).
 */
const { values } = parseArgs({ options: { 'older-than-hours': { type: 'string', default: '24' }, 'dry-run': { type: 'boolean', default: false } } });
const config = loadConfig();
const log = createLogger(config.logLevel);
const hours = Number(values['older-than-hours']);
if (!Number.isFinite(hours) || hours < 1) {
  log.fatal('--older-than-hours must be at least 1 (younger blobs may belong to work in progress)');
  process.exit(2);
}
const db = await openDatabase(config, log);
const blobs = await openBlobs(config);
try {
  await sweepOrphanBlobs(new Store(db), blobs, log, { olderThanMs: hours * 3_600_000, dryRun: values['dry-run'] });
} finally {
  await blobs.close();
  await db.close();
}
