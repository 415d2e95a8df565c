import type { Logger } from 'pino';
import type { Bus } from './bus.js';

type Handler = (payload: string) => void;

/** One subscribe() call; `active` goes false on unsubscribe so queued deliveries skip it. */
interface Registration {
  readonly handler: Handler;
  readonly bus: LocalBus;
  active: boolean;
}

interface Entry {
  value: string;
  expiresAt: number;
}

/**
 * The kv map is purged of expired entries when it reaches this size, then at twice the size left:
 * keys such as rate-limit counters are often never read again, so lazy expiry alone would leak;
 * purging on growth keeps memory within about twice the live keys without any timer.
 */
const PURGE_MIN_SIZE = 1024;

/**
 * The state shared by the LocalBus instances of one process: channels, presence and keys. Usually
 * each LocalBus has its own; tests may give several buses one hub to play several nodes.
 */
export class LocalHub {
  readonly channels = new Map<string, Registration[]>();
  readonly presence = new Map<string, { node: string; last: number }>();
  readonly kv = new Map<string, Entry>();
  /** Deliveries waiting for the next setImmediate, in publish order. */
  readonly queue: Array<{ regs: Registration[]; payload: string; channel: string }> = [];
  private flushing = false;
  purgeAt = PURGE_MIN_SIZE;

  constructor(readonly now: () => number = Date.now) {}

  /** Schedule delivery: never synchronously inside publish, as with Redis. */
  enqueue(regs: Registration[], payload: string, channel: string): void {
    this.queue.push({ regs, payload, channel });
    if (this.flushing) return;
    this.flushing = true;
    // setImmediate rather than a microtask: a handler that publishes in turn cannot starve I/O.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushing = false;
    const batch = this.queue.splice(0, this.queue.length);
    for (const { regs, payload, channel } of batch) {
      for (const reg of regs) {
        if (!reg.active) continue;
        try {
          reg.handler(payload);
        } catch (err) {
          reg.bus.log.error({ err, channel }, 'bus handler threw');
        }
      }
    }
  }

  /** The live entry of key, dropping it if it has expired. */
  read(key: string): Entry | undefined {
    const e = this.kv.get(key);
    if (e && e.expiresAt <= this.now()) {
      this.kv.delete(key);
      return undefined;
    }
    return e;
  }

  write(key: string, entry: Entry): void {
    this.kv.set(key, entry);
    if (this.kv.size < this.purgeAt) return;
    const now = this.now();
    for (const [k, e] of this.kv) if (e.expiresAt <= now) this.kv.delete(k);
    this.purgeAt = Math.max(PURGE_MIN_SIZE, this.kv.size * 2);
  }
}

/** Options of LocalBus. */
export interface LocalBusOptions {
  log: Logger;
  /** Share state with other LocalBus instances (tests of several nodes in one process). */
  hub?: LocalHub;
  /** The clock of key expiry, when no hub is given. */
  now?: () => number;
}

/**
 * The Bus inside one process, for the embedded single node. Same semantics as RedisBus: handlers
 * run asynchronously (never inside publish), presence and keys live in Maps, keys expire lazily.
 * It holds no timer, so it never keeps the process alive.
 */
export class LocalBus implements Bus {
  readonly log: Logger;
  private readonly hub: LocalHub;
  private closed = false;

  constructor(opts: LocalBusOptions) {
    this.log = opts.log.child({ module: 'bus-local' });
    this.hub = opts.hub ?? new LocalHub(opts.now);
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('bus is closed');
  }

  async publish(channel: string, payload: string): Promise<void> {
    if (this.closed) {
      this.log.warn({ channel }, 'publish on a closed bus; the wake-up is lost');
      return;
    }
    const regs = this.hub.channels.get(channel);
    // A copy: those subscribed now; one that unsubscribes before delivery is skipped (active).
    if (regs && regs.length > 0) this.hub.enqueue(regs.slice(), payload, channel);
  }

  async publishMany(items: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void> {
    for (const [channel, payload] of items) await this.publish(channel, payload);
  }

  async subscribe(channel: string, handler: Handler): Promise<void> {
    this.checkOpen();
    let regs = this.hub.channels.get(channel);
    if (!regs) {
      regs = [];
      this.hub.channels.set(channel, regs);
    }
    regs.push({ handler, bus: this, active: true });
  }

  async unsubscribe(channel: string, handler: Handler): Promise<void> {
    const regs = this.hub.channels.get(channel);
    if (!regs) return;
    for (let i = regs.length - 1; i >= 0; i--) {
      const reg = regs[i]!;
      if (reg.handler === handler && reg.bus === this) {
        reg.active = false;
        regs.splice(i, 1);
        break;
      }
    }
    if (regs.length === 0) this.hub.channels.delete(channel);
  }

  /** Never called: in one process there is no gap in which a publish could be lost. */
  onResume(_listener: () => void): () => void {
    return () => {};
  }

  async heartbeat(userId: string, nodeId: string, atMs: number): Promise<boolean> {
    this.checkOpen();
    const prev = this.hub.presence.get(userId);
    // Keep the latest time, as ZADD GT does: a skewed older report must not bring expiry closer.
    this.hub.presence.set(userId, { node: nodeId, last: prev ? Math.max(prev.last, atMs) : atMs });
    return prev === undefined;
  }

  async lastHeartbeats(userIds: readonly string[]): Promise<Map<string, number>> {
    this.checkOpen();
    const out = new Map<string, number>();
    for (const id of userIds) {
      const p = this.hub.presence.get(id);
      if (p) out.set(id, p.last);
    }
    return out;
  }

  async sweepExpired(beforeMs: number, max: number): Promise<Array<{ userId: string; lastMs: number }>> {
    this.checkOpen();
    if (!(max >= 1)) return [];
    const expired: Array<{ userId: string; lastMs: number }> = [];
    for (const [userId, p] of this.hub.presence) if (p.last < beforeMs) expired.push({ userId, lastMs: p.last });
    // The order of ZRANGEBYSCORE: by time, then by member.
    expired.sort((a, b) => a.lastMs - b.lastMs || (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
    const taken = expired.slice(0, Math.floor(max));
    for (const { userId } of taken) this.hub.presence.delete(userId);
    return taken;
  }

  async get(key: string): Promise<string | null> {
    this.checkOpen();
    return this.hub.read(key)?.value ?? null;
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.checkOpen();
    this.hub.write(key, { value, expiresAt: this.hub.now() + ttl(ttlMs) });
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.checkOpen();
    const ms = ttl(ttlMs);
    if (this.hub.read(key)) return false;
    this.hub.write(key, { value, expiresAt: this.hub.now() + ms });
    return true;
  }

  async del(key: string): Promise<void> {
    this.checkOpen();
    this.hub.kv.delete(key);
  }

  async lockAndGet(lockKey: string, token: string, ttlMs: number, key: string): Promise<{ locked: boolean; value: string | null }> {
    this.checkOpen();
    const ms = ttl(ttlMs);
    if (this.hub.read(lockKey)) return { locked: false, value: null };
    this.hub.write(lockKey, { value: token, expiresAt: this.hub.now() + ms });
    return { locked: true, value: this.hub.read(key)?.value ?? null };
  }

  async unlockWith(lockKey: string, token: string, write: { key: string; value: string | null; ttlMs: number } | null): Promise<boolean> {
    this.checkOpen();
    if (this.hub.read(lockKey)?.value !== token) return false;
    if (write) {
      if (write.value === null) this.hub.kv.delete(write.key);
      else this.hub.write(write.key, { value: write.value, expiresAt: this.hub.now() + ttl(write.ttlMs) });
    }
    this.hub.kv.delete(lockKey);
    return true;
  }

  async extendLock(lockKey: string, token: string, ttlMs: number): Promise<boolean> {
    this.checkOpen();
    if (this.hub.read(lockKey)?.value !== token) return false;
    this.hub.write(lockKey, { value: token, expiresAt: this.hub.now() + ttl(ttlMs) });
    return true;
  }

  async incr(key: string, ttlMs: number, by = 1): Promise<number> {
    this.checkOpen();
    const ms = ttl(ttlMs);
    if (!Number.isSafeInteger(by)) throw new Error(`incr by ${by}: not an integer`);
    const e = this.hub.read(key);
    if (!e) {
      this.hub.write(key, { value: String(by), expiresAt: this.hub.now() + ms });
      return by;
    }
    // Same refusal as Redis INCR on a value that is not an integer.
    if (!/^-?\d+$/.test(e.value)) throw new Error('ERR value is not an integer or out of range');
    const n = Number(e.value) + by;
    e.value = String(n);
    return n;
  }

  async ping(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [channel, regs] of this.hub.channels) {
      const kept = regs.filter((reg) => {
        if (reg.bus !== this) return true;
        reg.active = false;
        return false;
      });
      if (kept.length === 0) this.hub.channels.delete(channel);
      else this.hub.channels.set(channel, kept);
    }
  }
}

/** Validate a time-to-live the way RedisBus does (Redis rejects PX 0). */
function ttl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive number, got ${ttlMs}`);
  return Math.ceil(ttlMs);
}
