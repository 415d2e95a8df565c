import { pino } from 'pino';
import { EmbeddedDatabase } from '../../server/store/embedded.js';
import { migrate } from '../../server/store/migrate.js';

/**
 * One embedded database per test run: PGlite takes seconds and hundreds of MB to open, so every
 * suite shares this one (with unique names per test) and the root hook closes it at the end.
 */
let shared: Promise<EmbeddedDatabase> | undefined;

/** The run's shared, migrated embedded database. */
export function sharedEmbedded(): Promise<EmbeddedDatabase> {
  shared ??= (async () => {
    const db = await EmbeddedDatabase.open('memory://');
    await migrate(db, pino({ level: 'silent' }));
    return db;
  })();
  return shared;
}

/** Close the shared embedded database if a suite opened it. */
export async function closeSharedEmbedded(): Promise<void> {
  if (!shared) return;
  const db = await shared;
  shared = undefined;
  await db.close();
}
