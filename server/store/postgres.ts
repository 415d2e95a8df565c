import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { Logger } from 'pino';
import type { DatabaseSsl } from '../config.js';
import { RETRYABLE, TRANSACTION_ATTEMPTS, sqlState, type Database, type Queryable } from './db.js';

// bigint (int8) as number: sequence numbers and ids stay far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/**
 * Statements go as named prepared statements: each connection parses and plans a statement once,
 * not on every call (Parley's statements are few, fixed texts; planning the larger ones cost more
 * than running them). Scripts without parameters (migrations) go as they are.
 */
const names = new Map<string, string>();
function prepared(text: string, values: readonly unknown[]): pg.QueryConfig {
  if (values.length === 0) return { text };
  return { name: nameOf(text), text, values: values as unknown[] };
}

/**
 * Behind PgBouncer in transaction mode each transaction may run on another server connection,
 * where a statement prepared on the last one does not exist: every statement goes unnamed
 * (parsed and planned each time, in the same round trip).
 */
function unnamed(text: string, values: readonly unknown[]): pg.QueryConfig {
  return values.length === 0 ? { text } : { text, values: values as unknown[] };
}

function nameOf(text: string): string {
  let name = names.get(text);
  if (!name) {
    name = 'p' + createHash('sha1').update(text).digest('hex').slice(0, 16);
    names.set(text, name);
  }
  return name;
}

/** Options of PostgresDatabase.connect. */
export interface PostgresOptions {
  url: string;
  schema: string;
  log: Logger;
  /** Pool size (DATABASE_POOL_SIZE). */
  max?: number;
  /** TLS (DATABASE_SSL); default off, or what the URL's sslmode says as pg reads it. */
  ssl?: DatabaseSsl;
  /** PgBouncer in transaction mode (DATABASE_PGBOUNCER): no session state at all. */
  pgbouncer?: boolean;
}

/**
 * pg's options for a TLS mode. The URL's own ssl parameters are taken out: pg would let them
 * override these, with pg's meaning of `require` (verify) instead of libpq's (encrypt only).
 */
function connection(url: string, ssl: DatabaseSsl | undefined): { connectionString: string; ssl?: false | ConnectionOptions } {
  if (ssl === undefined) return { connectionString: url };
  const u = new URL(url);
  for (const p of [...u.searchParams.keys()]) if (p.startsWith('ssl') || p === 'uselibpqcompat') u.searchParams.delete(p);
  const connectionString = u.toString();
  if (ssl.mode === 'off') return { connectionString, ssl: false };
  const ca = ssl.caFile ? readFileSync(ssl.caFile, 'utf8') : undefined;
  switch (ssl.mode) {
    case 'require':
      return { connectionString, ssl: { rejectUnauthorized: false } };
    case 'verify-ca':
      // The chain is checked, the name is not (a server reached by IP or through a proxy)
      return { connectionString, ssl: { ca, checkServerIdentity: () => undefined } };
    case 'verify-full':
      return { connectionString, ssl: ca ? { ca } : {} };
  }
}

/** PostgreSQL through a pg Pool, with every connection's search_path set to one schema (behind PgBouncer: public, the default). */
export class PostgresDatabase implements Database {
  readonly kind = 'postgres' as const;
  /** Deadlocks reported to this pool's statements (each one also retried, in a transaction). */
  deadlocks = 0;
  private readonly statement: typeof prepared;
  private constructor(private readonly pool: pg.Pool, private readonly log: Logger, pgbouncer: boolean) {
    this.statement = pgbouncer ? unnamed : prepared;
  }

  /** Connect; creates the schema when it is missing (safe when several nodes start at once). */
  static async connect(opts: PostgresOptions): Promise<PostgresDatabase> {
    const conn = connection(opts.url, opts.ssl);
    const bootstrap = new pg.Client(conn);
    await bootstrap.connect();
    try {
      // Advisory lock: two nodes creating the same schema at once would otherwise race in
      // pg_namespace. Transaction-scoped: behind PgBouncer the unlock of a session lock could run
      // on another server connection, leaving the lock held there forever.
      await bootstrap.query('BEGIN');
      await bootstrap.query('SELECT pg_advisory_xact_lock(727001)');
      await bootstrap.query(`CREATE SCHEMA IF NOT EXISTS "${opts.schema}"`);
      await bootstrap.query('COMMIT');
    } finally {
      await bootstrap.end();
    }
    const pool = new pg.Pool({
      ...conn,
      max: opts.max ?? 20,
      // PgBouncer refuses (or drops) startup options; there the schema is public (see config.ts)
      ...(opts.pgbouncer ? {} : { options: `-c search_path="${opts.schema}"` }),
      idleTimeoutMillis: 30_000,
      // A database that does not answer fails a request in 5 s (503) instead of holding it forever
      connectionTimeoutMillis: 5_000,
    });
    const log = opts.log.child({ module: 'postgres' });
    // An idle client's error (server restart) must not crash the process; the pool replaces it.
    pool.on('error', (err) => log.warn({ err }, 'idle postgres client failed'));
    return new PostgresDatabase(pool, log, opts.pgbouncer ?? false);
  }

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    try {
      const res = await this.pool.query(this.statement(sql, params));
      return res.rows as R[];
    } catch (err) {
      this.count(err);
      throw err;
    }
  }

  private count(err: unknown): void {
    if (sqlState(err) === '40P01') {
      this.deadlocks++;
      this.log.warn({ code: '40P01' }, 'deadlock detected');
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Queryable = {
          query: async <R>(sql: string, params: readonly unknown[] = []) =>
            (await client.query(this.statement(sql, params))).rows as R[],
          exec: async (sql: string) => void (await client.query(sql)),
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        this.count(err);
        if (attempt < TRANSACTION_ATTEMPTS && RETRYABLE.has(sqlState(err) ?? '')) {
          this.log.debug({ attempt, code: sqlState(err) }, 'retrying transaction');
          continue;
        }
        throw err;
      } finally {
        client.release();
      }
    }
  }

  async ping(): Promise<boolean> {
    try {
      await this.pool.query('SELECT 1');
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
