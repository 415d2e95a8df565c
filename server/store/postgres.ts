import { createHash } from 'node:crypto';
import pg from 'pg';
import type { Logger } from 'pino';
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
  let name = names.get(text);
  if (!name) {
    name = 'p' + createHash('sha1').update(text).digest('hex').slice(0, 16);
    names.set(text, name);
  }
  return { name, text, values: values as unknown[] };
}

/** PostgreSQL through a pg Pool, with every connection's search_path set to one schema. */
export class PostgresDatabase implements Database {
  readonly kind = 'postgres' as const;
  /** Deadlocks reported to this pool's statements (each one also retried, in a transaction). */
  deadlocks = 0;
  private constructor(private readonly pool: pg.Pool, private readonly log: Logger) {}

  /** Connect; creates the schema when it is missing (safe when several nodes start at once). */
  static async connect(opts: { url: string; schema: string; log: Logger; max?: number }): Promise<PostgresDatabase> {
    const bootstrap = new pg.Client({ connectionString: opts.url });
    await bootstrap.connect();
    try {
      // Advisory lock: two nodes creating the same schema at once would otherwise race in pg_namespace.
      await bootstrap.query('SELECT pg_advisory_lock(727001)');
      await bootstrap.query(`CREATE SCHEMA IF NOT EXISTS "${opts.schema}"`);
      await bootstrap.query('SELECT pg_advisory_unlock(727001)');
    } finally {
      await bootstrap.end();
    }
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.max ?? 20,
      options: `-c search_path="${opts.schema}"`,
      idleTimeoutMillis: 30_000,
      // A database that does not answer fails a request in 5 s (503) instead of holding it forever
      connectionTimeoutMillis: 5_000,
    });
    const log = opts.log.child({ module: 'postgres' });
    // An idle client's error (server restart) must not crash the process; the pool replaces it.
    pool.on('error', (err) => log.warn({ err }, 'idle postgres client failed'));
    return new PostgresDatabase(pool, log);
  }

  async query<R>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    try {
      const res = await this.pool.query(prepared(sql, params));
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
            (await client.query(prepared(sql, params))).rows as R[],
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
