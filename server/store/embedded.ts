import { PGlite } from '@electric-sql/pglite';
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import type { Database, Queryable } from './db.js';

/**
 * The embedded default: PGlite (PostgreSQL compiled to WebAssembly) in this process, running the
 * same SQL. One connection, so every statement and transaction goes through one queue.
 * Opening costs seconds and hundreds of MB: tests share one instance per run.
 */
export class EmbeddedDatabase implements Database {
  /** One connection: no two transactions ever wait on each other. */
  readonly deadlocks = 0;
  readonly kind = 'embedded' as const;
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;
  private constructor(
    private readonly db: PGlite,
    private readonly lockFile: string | null,
  ) {}

  /**
   * Open (or create) the database in dir; `memory://` keeps it in memory. A directory is taken
   * with a lock file beside it: two processes on one PGlite directory would each keep their own
   * view of it and overwrite the other's writes (a second `npm start`, or `npm run archive` beside
   * a running server), so the second is refused with a message instead.
   */
  static async open(dir: string): Promise<EmbeddedDatabase> {
    if (dir.startsWith('memory://')) return new EmbeddedDatabase(await PGlite.create(dir), null);
    mkdirSync(dir, { recursive: true, mode: 0o700 }); // the database files: the owner only
    const lockFile = `${dir.replace(/[\\/]+$/, '')}.lock`;
    takeLock(lockFile);
    try {
      return new EmbeddedDatabase(await PGlite.create(dir), lockFile);
    } catch (err) {
      rmSync(lockFile, { force: true });
      held.delete(lockFile);
      throw err;
    }
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
    try {
      await this.serial(() => this.db.close());
    } finally {
      if (this.lockFile) {
        rmSync(this.lockFile, { force: true });
        held.delete(this.lockFile);
      }
    }
  }
}

/** Lock files this process holds (its own pid in a lock file may also be a stale one from a
 * previous container that ran as the same pid, e.g. 1). */
const held = new Set<string>();

/** Create `file` holding this pid; a lock whose process is gone is taken over. */
function takeLock(file: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      held.add(file);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileSync(file, 'utf8').trim());
    const mine = holder === process.pid;
    if (Number.isInteger(holder) && holder > 0 && (mine ? held.has(file) : alive(holder))) {
      throw new Error(
        `the embedded database ${file.slice(0, -'.lock'.length)} is in use by process ${holder} (another Parley?): ` +
          `stop it first, or use PostgreSQL (DATABASE_URL); if no such process is Parley, remove ${file}`,
      );
    }
    rmSync(file, { force: true }); // left by a process that is gone
  }
  throw new Error(`could not take the lock ${file}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}
