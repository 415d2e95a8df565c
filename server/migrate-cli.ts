import { loadConfig } from './config.js';
import { openDatabase } from './deps.js';
import { createLogger } from './log.js';

/** `npm run migrate`: apply the migrations and exit (Heroku's release phase). */
const config = loadConfig();
const log = createLogger(config.logLevel);
const db = await openDatabase(config, log);
await db.close();
log.info('migrations up to date');
