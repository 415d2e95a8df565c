import { createHash } from 'node:crypto';
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

/** Where the SQL functions live, one file each, as they are now: sql/functions/send.sql, … */
export const FUNCTIONS_DIR = projectPath('sql', 'functions');

/** A function file: its name, the revision its first line declares (`-- revision N`), its text and checksum. */
export interface FunctionFile {
  name: string;
  revision: number;
  sql: string;
  checksum: string;
}

/** The function files on disk, by name. */
export function listFunctions(): FunctionFile[] {
  return readdirSync(FUNCTIONS_DIR)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => {
      const sql = readFileSync(path.join(FUNCTIONS_DIR, f), 'utf8');
      const m = /^-- revision (\d+)\n/.exec(sql);
      if (!m) throw new Error(`sql/functions/${f} must start with "-- revision N"`);
      return { name: f, revision: Number(m[1]), sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

/** The advisory lock every migrating node takes, for migrations and functions alike. */
const MIGRATION_LOCK = 727002;

/** Create a bookkeeping table (with its applied_at) unless it exists, also when several nodes start at once. */
async function bookkeeping(db: Database, table: string, columns: string): Promise<void> {
  await db.query(`CREATE TABLE IF NOT EXISTS ${table} (${columns}, applied_at timestamptz NOT NULL DEFAULT now())`).catch(async (err) => {
    // Two nodes creating the table at once: one loses on the catalog's unique index; the table exists.
    const rows = await db.query(`SELECT to_regclass('${table}') AS t`);
    if (!rows[0] || !(rows[0] as { t: unknown }).t) throw err;
  });
}

/**
 * Apply every migration not yet applied, each in its own transaction. A transaction-scoped
 * advisory lock serialises nodes that start at once: the second waits, then sees the version
 * recorded and skips it.
 */
export async function migrate(db: Database, log: Logger): Promise<number[]> {
  await bookkeeping(db, 'schema_migrations', 'version integer PRIMARY KEY, name text NOT NULL');
  const applied: number[] = [];
  for (const m of listMigrations()) {
    const done = await db.transaction(async (tx) => {
      await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
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
  await applyFunctions(db, log);
  return applied;
}

/**
 * (Re)create the SQL functions of sql/functions/ that differ from what the database holds: the
 * files are repeatable migrations (each one CREATE OR REPLACE), so one file shows each function
 * as it is, with no history to read through. A file whose revision is lower than the one the
 * database recorded is left alone: that is a node of the previous release restarting during a
 * rolling deploy, and it must not put the old body back. A function whose arguments or result
 * columns change gets a new name (parley_send_v2), so the previous release's nodes keep calling
 * the old one until they are gone: its prepared statements never see a changed result type.
 */
export async function applyFunctions(db: Database, log: Logger): Promise<string[]> {
  await bookkeeping(db, 'schema_functions', 'name text PRIMARY KEY, revision integer NOT NULL, checksum text NOT NULL');
  const files = listFunctions();
  return db.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`);
    const rows = await tx.query<{ name: string; revision: number; checksum: string }>('SELECT name, revision, checksum FROM schema_functions');
    const known = new Map(rows.map((r) => [r.name, r]));
    const changed: string[] = [];
    for (const f of files) {
      const have = known.get(f.name);
      if (have && (have.revision > f.revision || have.checksum === f.checksum)) {
        if (have.revision > f.revision) log.warn({ function: f.name, database: have.revision, mine: f.revision }, 'the database holds a newer function');
        continue;
      }
      await tx.exec(f.sql);
      await tx.query(
        `INSERT INTO schema_functions (name, revision, checksum) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET revision = excluded.revision, checksum = excluded.checksum, applied_at = now()`,
        [f.name, f.revision, f.checksum],
      );
      changed.push(f.name);
      log.info({ function: f.name, revision: f.revision }, 'applied function');
    }
    return changed;
  });
}
