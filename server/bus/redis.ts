import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { Bus } from './bus.js';
import { openConnections, quit, type Client } from './redis-connection.js';
import { RedisPresence } from './redis-presence.js';
import { RedisPubSub } from './redis-pubsub.js';
import type { Scripted } from './redis-scripts.js';

/** ping() gives up after this: a readiness probe must answer quickly even while Redis is away. */
const PING_TIMEOUT_MS = 1000;

/** Options of RedisBus.connect. */
export interface RedisBusOptions {
  url: string;
  /** Prepended to every key and channel, so that several deployments (or test runs) share one Redis. */
  prefix: string;
  log: Logger;
  /** TLS options for rediss:// (certificate checks, CA). */
  tls?: ConnectionOptions;
  /** `url` is a node of a Redis Cluster (REDIS_CLUSTER). */
  cluster?: boolean;
}

/**
 * The Bus over Redis, for several nodes: a command connection, pub/sub (redis-pubsub.ts),
 * presence (redis-presence.ts) and the key-value store, whose multi-key steps are Lua scripts
 * (redis-scripts.ts). On a Redis Cluster a key's hash tag is its last `:` segment, so the keys
 * of one call (`bosh:l:SID`, `bosh:s:SID`) share a slot.
 *
 * publish() and publishMany() never reject: a failure is logged and the promise resolves, because
 * callers fire and forget wake-ups and a lost wake-up only costs latency. unsubscribe() never
 * rejects either. Every other method rejects on a Redis error.
 */
export class RedisBus implements Bus {
  private closed = false;

  private constructor(
    private readonly cmd: Scripted,
    private readonly sub: Client,
    private readonly pubsub: RedisPubSub,
    private readonly presence: RedisPresence,
    private readonly prefix: string,
    private readonly cluster: boolean,
  ) {}

  /** Open the connections; rejects (leaving nothing open) when Redis cannot be reached. */
  static async connect(opts: RedisBusOptions): Promise<RedisBus> {
    const log = opts.log.child({ module: 'bus-redis' });
    const conns = await openConnections({ url: opts.url, tls: opts.tls, cluster: opts.cluster }, log);
    return new RedisBus(
      conns.cmd,
      conns.sub,
      new RedisPubSub(conns, log),
      new RedisPresence(conns.cmd, opts.prefix, conns.cluster),
      opts.prefix,
      conns.cluster,
    );
  }

  /** A key of the key-value store; on a cluster its last segment is its hash tag. */
  private key(k: string): string {
    if (!this.cluster) return `${this.prefix}kv:${k}`;
    const cut = k.lastIndexOf(':') + 1;
    return `${this.prefix}kv:${k.slice(0, cut)}{${k.slice(cut)}}`;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('bus is closed');
  }

  publish(channel: string, payload: string): Promise<void> {
    return this.pubsub.publish(this.prefix + channel, payload);
  }

  publishMany(items: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void> {
    return this.pubsub.publishMany(items.map(([c, p]) => [this.prefix + c, p] as const));
  }

  async subscribe(channel: string, handler: (payload: string) => void): Promise<void> {
    this.checkOpen();
    await this.pubsub.subscribe(this.prefix + channel, handler);
  }

  unsubscribe(channel: string, handler: (payload: string) => void): Promise<void> {
    return this.pubsub.unsubscribe(this.prefix + channel, handler);
  }

  onResume(listener: () => void): () => void {
    return this.pubsub.onResume(listener);
  }

  async heartbeat(userId: string, nodeId: string, atMs: number): Promise<boolean> {
    this.checkOpen();
    return this.presence.heartbeat(userId, nodeId, atMs);
  }

  async lastHeartbeats(userIds: readonly string[]): Promise<Map<string, number>> {
    this.checkOpen();
    return this.presence.lastHeartbeats(userIds);
  }

  async sweepExpired(beforeMs: number, max: number): Promise<Array<{ userId: string; lastMs: number }>> {
    this.checkOpen();
    return this.presence.sweepExpired(beforeMs, max);
  }

  async get(key: string): Promise<string | null> {
    this.checkOpen();
    return this.cmd.get(this.key(key));
  }

  async set(key: string, value: string, ttlMs: number): Promise<void> {
    this.checkOpen();
    await this.cmd.set(this.key(key), value, 'PX', ttl(ttlMs));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    this.checkOpen();
    return (await this.cmd.set(this.key(key), value, 'PX', ttl(ttlMs), 'NX')) === 'OK';
  }

  async del(key: string): Promise<void> {
    this.checkOpen();
    await this.cmd.del(this.key(key));
  }

  async extendLock(lockKey: string, token: string, ttlMs: number): Promise<boolean> {
    this.checkOpen();
    return Number(await this.cmd.parleyExtendLock(this.key(lockKey), token, ttl(ttlMs))) === 1;
  }

  async incr(key: string, ttlMs: number, by = 1): Promise<number> {
    this.checkOpen();
    if (!Number.isSafeInteger(by)) throw new Error(`incr by ${by}: not an integer`);
    return Number(await this.cmd.parleyIncr(this.key(key), ttl(ttlMs), by));
  }

  async lockAndGet(lockKey: string, token: string, ttlMs: number, key: string): Promise<{ locked: boolean; value: string | null }> {
    this.checkOpen();
    const r = await this.cmd.parleyLockGet(this.key(lockKey), this.key(key), token, ttl(ttlMs));
    // A nil GET ends the Lua table early: {1} means locked, no value.
    return r[0] === 1 ? { locked: true, value: r[1] ?? null } : { locked: false, value: null };
  }

  async unlockWith(lockKey: string, token: string, write: { key: string; value: string | null; ttlMs: number } | null): Promise<boolean> {
    this.checkOpen();
    const mode = write === null ? '-' : write.value === null ? '0' : '1';
    const held = await this.cmd.parleyUnlockWith(
      this.key(lockKey),
      this.key(write?.key ?? lockKey),
      token,
      mode,
      write?.value ?? '',
      mode === '1' ? ttl(write!.ttlMs) : 0,
    );
    return Number(held) === 1;
  }

  /**
   * Readiness: a real keyed command, routed as every other (on a cluster PING answers from any
   * node, even one that would answer the others with MOVED or CLUSTERDOWN).
   */
  async ping(): Promise<boolean> {
    if (this.closed || this.cmd.status !== 'ready') return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.cmd.exists(this.key('ready')).then(() => true, () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pubsub.close();
    await Promise.all([quit(this.cmd), quit(this.sub)]);
  }
}

/** Validate a time-to-live: Redis rejects PX 0 and fractions, and a silent default would hide a bug. */
function ttl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive number, got ${ttlMs}`);
  return Math.ceil(ttlMs);
}
