import { loadConfig } from './config.js';
import { Keyring } from './core/keys.js';
import { rotateMasterKey } from './core/rotate.js';
import { openDatabase, resolveMasterKey } from './deps.js';
import { createLogger } from './log.js';
import { Store } from './store/store.js';

/**
 * `npm run rotate-master-key`: with MASTER_KEY the new key and MASTER_KEY_PREVIOUS the old one(s),
 * re-wrap every conversation key with MASTER_KEY, then exit. Afterwards MASTER_KEY_PREVIOUS can go.
 */
const config = loadConfig();
const log = createLogger(config.logLevel);
if (config.previousMasterKeys.length === 0) {
  log.fatal('set MASTER_KEY_PREVIOUS to the master key(s) being replaced, and MASTER_KEY to the new one');
  process.exit(2);
}
const db = await openDatabase(config, log);
try {
  const { failed } = await rotateMasterKey(new Store(db), new Keyring(resolveMasterKey(config, log), config.previousMasterKeys), log);
  if (failed > 0) process.exitCode = 1; // each logged above
} finally {
  await db.close();
}
