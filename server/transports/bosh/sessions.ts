/**
 * BOSH sessions in the shared key-value store, so any node can answer any request of any sid.
 *
 * Every change to a session happens under a per-sid lock: requests of one sid may land on two
 * nodes at the same instant, and XEP-0124 wants their payloads processed in rid order. The lock
 * is two-level: an in-process queue (contenders on one node wait without touching the Bus), then
 * a Bus key set-if-absent with a short expiry (contenders across nodes retry with backoff). The
 * expiry only matters if a node dies holding the lock: the session is then stuck for LOCK_TTL_MS
 * at most, never forever. A section that outlives its lock saves nothing (Bus.unlockWith checks
 * the token before it writes) and fails, so its answer is never sent.
 */
import { randomBytes } from 'node:crypto';
import type { Bus } from '../../bus/bus.js';
import { storeTtlMs, type SessionState } from './session.js';

/**
 * 3 s: a locked section takes a few ms (one database write, one read), so this is far above it,
 * and it bounds the stall when a node dies holding a lock (the session waits this long, once).
 */
const LOCK_TTL_MS = 3_000;
/** 5 s: wait longer than a dead holder's lock lives, so the waiter gets it; then the client retries. */
const LOCK_WAIT_MS = 5_000;

/** The session could not be locked in time (another node is slow or died holding it), or its lock expired before the save. */
export class LockTimeout extends Error {
  constructor() {
    super('a BOSH session is busy'); // no sid: messages end up in logs, and a sid is a credential
    this.name = 'LockTimeout';
  }
}

/**
 * The step outlived its lock (LOCK_TTL_MS): another node may hold the session now, so nothing was
 * saved; the client resends the rid and it is processed afresh.
 */
export class LockLost extends Error {
  constructor(ms: number) {
    super(`a BOSH session step took ${ms} ms, past its lock`);
    this.name = 'LockLost';
  }
}

/** What a locked update decides: keep the (mutated) state, or drop the session. */
export type Outcome<T> = { result: T; save: SessionState | null; drop?: boolean };

/** Shared BOSH session storage over the Bus key-value store. */
export class SessionStore {
  private readonly local = new Map<string, Promise<unknown>>();
  /** Lock tokens: this store's random prefix and a counter, unique among every node's contenders. */
  private readonly tokenPrefix = randomBytes(8).toString('hex');
  private tokens = 0;

  /** lockTtlMs: LOCK_TTL_MS; tests shorten it to show a step past its lock aborts. */
  constructor(private readonly bus: Bus, private readonly lockTtlMs = LOCK_TTL_MS) {}

  private key(sid: string): string {
    return `bosh:s:${sid}`;
  }

  /** Read a session without locking (for decisions a later locked step re-checks). */
  async get(sid: string): Promise<SessionState | null> {
    const raw = await this.bus.get(this.key(sid));
    return raw ? (JSON.parse(raw) as SessionState) : null;
  }

  /** Store a new session; false if the sid is somehow taken. */
  async create(s: SessionState): Promise<boolean> {
    return this.bus.setIfAbsent(this.key(s.sid), JSON.stringify(s), storeTtlMs(s));
  }

  /**
   * Run `fn` on the current state of `sid` under the session lock, then save what it returns
   * (`save: null` keeps the stored state untouched, `drop: true` deletes the session).
   */
  async update<T>(sid: string, fn: (s: SessionState | null) => Promise<Outcome<T>> | Outcome<T>): Promise<T> {
    // In-process queue: chain behind the previous holder on this node.
    const prev = this.local.get(sid) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const chained = prev.then(() => mine);
    this.local.set(sid, chained);
    await prev.catch(() => undefined);
    try {
      return await this.locked(sid, fn);
    } finally {
      release();
      if (this.local.get(sid) === chained) this.local.delete(sid);
    }
  }

  /**
   * The Bus lock around one update, in two round trips: lock-and-load, then save-and-unlock
   * (Lua scripts on Redis). Contenders on other nodes retry with backoff.
   */
  private async locked<T>(sid: string, fn: (s: SessionState | null) => Promise<Outcome<T>> | Outcome<T>): Promise<T> {
    const lockKey = `bosh:l:${sid}`;
    const token = `${this.tokenPrefix}:${++this.tokens}`;
    const deadline = Date.now() + LOCK_WAIT_MS;
    let backoff = 1;
    let got: { locked: boolean; value: string | null };
    while (!(got = await this.bus.lockAndGet(lockKey, token, this.lockTtlMs, this.key(sid))).locked) {
      if (Date.now() > deadline) throw new LockTimeout();
      await new Promise((r) => setTimeout(r, backoff));
      // Up to 16 ms: a locked section is a few ms, so waiting longer only adds latency.
      backoff = Math.min(backoff * 2, 16);
    }
    const lockedAt = Date.now();
    // A step may take longer than the lock lives (a SASL login waits for the password hash, which
    // a login storm queues): it renews the lock while it runs, and stops only when the lock is no
    // longer its own (then it saves nothing: another node may have moved the session on).
    let lost = false;
    const renew = setInterval(() => {
      this.bus.extendLock(lockKey, token, this.lockTtlMs).then(
        (held) => (lost ||= !held),
        () => (lost = true),
      );
    }, Math.max(10, Math.floor(this.lockTtlMs / 3)));
    let out: Outcome<T>;
    try {
      out = await fn(got.value ? (JSON.parse(got.value) as SessionState) : null);
    } catch (err) {
      await this.bus.unlockWith(lockKey, token, null).catch(() => undefined);
      throw err;
    } finally {
      clearInterval(renew);
    }
    const took = Date.now() - lockedAt;
    let write: { key: string; value: string | null; ttlMs: number } | null = null;
    if (out.drop) write = { key: this.key(sid), value: null, ttlMs: 0 };
    else if (out.save) write = { key: this.key(sid), value: JSON.stringify(out.save), ttlMs: storeTtlMs(out.save) };
    // The lock was lost meanwhile: abort rather than overwrite (the script checks the token too,
    // for the time the write travels).
    if (lost && write) {
      await this.bus.unlockWith(lockKey, token, null).catch(() => undefined);
      throw new LockLost(took);
    }
    if (!(await this.bus.unlockWith(lockKey, token, write)) && write) throw new LockLost(took);
    return out.result;
  }
}
