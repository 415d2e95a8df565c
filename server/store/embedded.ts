import { PGlite } from '@electric-sql/pglite';
import { mkdirSync } from 'node:fs';
import type { Database, Queryable } from './db.js';

/**
 * The embedded default: PGlite (PostgreSQL compiled to WebAssembly) in this process, running the
 * same SQL. One connection, so every statement and transaction goes through one queue.
 * Opening costs seconds and hundreds of MB: tests share one instance per run.
 */
export class EmbeddedDatabase implements Database {
  readonly kind = 'embedded' as const;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private constructor(private readonly db: PGlite) {}

  /** Open (or create) the database in dir; `memory://` keeps it in memory. */
  static async open(dir: string): Promise<EmbeddedDatabase> {
    if (!dir.startsWith('memory://')) mkdirSync(dir, { recursive: true });
    const db = await PGlite.create(dir);
    return new EmbeddedDatabase(db);
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => undefined);
    return run;
  }

  query<R>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
    return this.serial(async () => (await this.db.query<R>(sql, params as unknown[])).rows);
  }

  exec(sql: string): Promise<void> {
    return this.serial(async () => void (await this.db.exec(sql)));
  }

  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.serial(async () => {
      await this.db.query('BEGIN');
      try {
        const tx: Queryable = {
          query: async <R>(sql: string, params: readonly unknown[] = []) =>
            (await this.db.query<R>(sql, params as unknown[])).rows,
          exec: async (sql: string) => void (await this.db.exec(sql)),
        };
        const result = await fn(tx);
        await this.db.query('COMMIT');
        return result;
      } catch (err) {
        await this.db.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
  }

  async ping(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.serial(() => this.db.close());
  }
}
