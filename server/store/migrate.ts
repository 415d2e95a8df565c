import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { projectPath } from '../paths.js';
import type { Database } from './db.js';

/** Where the numbered migrations live: sql/0001_name.sql, sql/0002_name.sql, … */
export const SQL_DIR = projectPath('sql');

/** The migrations on disk, in order. */
export function listMigrations(): Array<{ version: number; name: string; sql: string }> {
  const dir = SQL_DIR;
  return readdirSync(dir)
    .filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 4)), name: f, sql: readFileSync(path.join(dir, f), 'utf8') }));
}

/**
 * Apply every migration not yet applied, each in its own transaction. A transaction-scoped
 * advisory lock serialises nodes that start at once: the second waits, then sees the version
 * recorded and skips it.
 */
export async function migrate(db: Database, log: Logger): Promise<number[]> {
  await db.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`).catch(
    async (err) => {
      // Two nodes creating the table at once: one loses on the catalog's unique index; the table exists.
      const rows = await db.query(`SELECT to_regclass('schema_migrations') AS t`);
      if (!rows[0] || !(rows[0] as { t: unknown }).t) throw err;
    },
  );
  const applied: number[] = [];
  for (const m of listMigrations()) {
    const done = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(727002)');
      const rows = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (rows.length > 0) return false;
      await tx.exec(m.sql);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    if (done) {
      applied.push(m.version);
      log.info({ migration: m.name }, 'applied migration');
    }
  }
  return applied;
}
