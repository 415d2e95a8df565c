/**
 * The database seam: plain SQL with $1 parameters, the same text on PostgreSQL (pg) and on the
 * embedded PGlite. Rows come back with bigint as number, bytea as Buffer, jsonb parsed.
 */
export interface Queryable {
  /** Run one statement; resolves its rows. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Run a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** A database: statements, transactions, health and shutdown. */
export interface Database extends Queryable {
  readonly kind: 'postgres' | 'embedded';
  /** Run fn in one transaction (BEGIN … COMMIT, ROLLBACK on throw); retried on deadlock or serialization failure. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
  /** Deadlocks PostgreSQL reported to this node's statements since it started (retried or not). */
  readonly deadlocks: number;
}

/** SQLSTATEs that mean "run the transaction again". */
export const RETRYABLE = new Set(['40P01', '40001']);

/** How often a transaction is retried after a deadlock or serialization failure. */
export const TRANSACTION_ATTEMPTS = 5;

/** Postgres error code of a driver error, if any. */
export function sqlState(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

/** True for a unique-constraint violation. */
export function isUniqueViolation(err: unknown): boolean {
  return sqlState(err) === '23505';
}

/** bytea values arrive as Buffer (pg) or Uint8Array (PGlite); make them Buffers. */
export function toBuffer(v: unknown): Buffer {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  throw new TypeError('expected bytes');
}
