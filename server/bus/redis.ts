import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Bus } from './bus.js';

type Handler = (payload: string) => void;

/** One channel's local state: its handlers and whether Redis has acknowledged our SUBSCRIBE. */
interface Channel {
  handlers: Handler[];
  /** True once Redis acknowledged SUBSCRIBE and until it acknowledges UNSUBSCRIBE. */
  live: boolean;
  /** SUBSCRIBE/UNSUBSCRIBE of one channel run one at a time, in order (see sync()). */
  queue: Promise<void>;
  pending: number;
}

/**
 * A heartbeat: ZADD GT keeps the latest time when two nodes report one user with skewed clocks
 * (an older report must not bring an expiry closer). ZADD answers 1 only when the member is new,
 * which is exactly "the user came online".
 */
const HEARTBEAT_LUA = `
local added = redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return added`;

/**
 * Claim expired heartbeats. One script, so Redis runs it atomically: when several nodes sweep at
 * once, each member is read and removed by exactly one of them. '(' makes the bound exclusive.
 */
const SWEEP_LUA = `
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #found, 2 do
  redis.call('ZREM', KEYS[1], found[i])
  redis.call('HDEL', KEYS[2], found[i])
end
return found`;

/** A counter that expires ttl after its FIRST increment: PEXPIRE NX never moves an existing expiry. */
const INCR_LUA = `
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
return n`;

/** Set-if-absent a lock and, when taken, read a key with it. */
const LOCK_GET_LUA = `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return {1, redis.call('GET', KEYS[2])}
end
return {0}`;

/** While the lock is ours: optionally write (ARGV[2] '1': set ARGV[3] with expiry ARGV[4]; '0': delete), then delete the lock. */
const UNLOCK_WITH_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
elseif ARGV[2] == '0' then
  redis.call('DEL', KEYS[2])
end
redis.call('DEL', KEYS[1])
return 1`;

/** A Lua script sent by SHA, and in full only when the server does not know it yet (NOSCRIPT). */
class Script {
  readonly sha: string;
  constructor(readonly lua: string) {
    this.sha = createHash('sha1').update(lua).digest('hex');
  }
  async run(redis: Redis, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return await redis.eval(this.lua, keys.length, ...keys, ...args);
      }
      throw err;
    }
  }
}
const heartbeatScript = new Script(HEARTBEAT_LUA);
const sweepScript = new Script(SWEEP_LUA);
const incrScript = new Script(INCR_LUA);
const lockGetScript = new Script(LOCK_GET_LUA);
const unlockWithScript = new Script(UNLOCK_WITH_LUA);

/** ping() gives up after this: a readiness probe must answer quickly even while Redis is away. */
const PING_TIMEOUT_MS = 1000;

/** Options of RedisBus.connect. */
export interface RedisBusOptions {
  url: string;
  /** Prepended to every key and channel, so that several deployments (or test runs) share one Redis. */
  prefix: string;
  log: Logger;
}

/**
 * The Bus over Redis, for several nodes. Two connections per bus: one for commands and ONE
 * subscriber connection multiplexing every channel of this node (see docs/bus.md).
 *
 * publish() and publishMany() never reject: a failure is logged and the promise resolves, because
 * callers fire and forget wake-ups and a lost wake-up only costs latency. unsubscribe() never
 * rejects either. Every other method rejects on a Redis error.
 */
export class RedisBus implements Bus {
  private readonly channels = new Map<string, Channel>();
  private readonly resumeListeners = new Set<() => void>();
  private readonly presenceLast: string;
  private readonly presenceNode: string;
  private closed = false;

  private constructor(
    private readonly cmd: Redis,
    private readonly sub: Redis,
    private readonly prefix: string,
    private readonly log: Logger,
  ) {
    this.presenceLast = `${prefix}presence:last`;
    this.presenceNode = `${prefix}presence:node`;
    sub.on('message', (channel: string, payload: string) => this.dispatch(channel, payload));
    let gap = false;
    sub.on('close', () => {
      gap = true;
    });
    sub.on('ready', () => {
      if (!gap || this.closed) return;
      gap = false;
      // ioredis emits 'ready' just before it sends the re-SUBSCRIBEs; a PING queued after them
      // answers only once Redis has processed them, so listeners re-read with the channels live.
      queueMicrotask(() => {
        this.sub.ping().then(
          () => this.resumed(),
          (err: unknown) => this.log.warn({ err }, 'subscriber PING after reconnect failed'),
        );
      });
    });
  }

  /** Open both connections; rejects (leaving nothing open) when Redis cannot be reached. */
  static async connect(opts: RedisBusOptions): Promise<RedisBus> {
    const log = opts.log.child({ module: 'bus-redis' });
    // Auto-pipelining: commands issued in the same tick (wake-ups, heartbeats, BOSH session steps
    // of many requests) go out in one socket write; on a loaded machine each write is a syscall
    // that costs more than the command.
    // A command waits through 3 reconnect attempts (~0.3 s), not ioredis's 20 (~10 s): while Redis
    // is away, a request that needs it fails fast with 503 and the client retries.
    const common = { lazyConnect: true, maxRetriesPerRequest: 3 };
    const cmd = new Redis(opts.url, { ...common, connectionName: 'parley-cmd', enableAutoPipelining: true });
    const sub = new Redis(opts.url, { ...common, connectionName: 'parley-sub' });
    watch(cmd, log.child({ conn: 'cmd' }));
    watch(sub, log.child({ conn: 'sub' }));
    try {
      await Promise.all([cmd.connect(), sub.connect()]);
    } catch (err) {
      // Without this, ioredis would keep retrying in the background and hold the process open.
      cmd.disconnect();
      sub.disconnect();
      throw err;
    }
    return new RedisBus(cmd, sub, opts.prefix, log);
  }

  private key(k: string): string {
    return `${this.prefix}kv:${k}`;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('bus is closed');
  }

  async publish(channel: string, payload: string): Promise<void> {
    try {
      await this.cmd.publish(this.prefix + channel, payload);
    } catch (err) {
      this.log.warn({ err, channel }, 'publish failed; the wake-up is lost (readers catch up on their next poll)');
    }
  }

  async publishMany(items: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void> {
    if (items.length === 0) return;
    try {
      const pipeline = this.cmd.pipeline();
      for (const [channel, payload] of items) pipeline.publish(this.prefix + channel, payload);
      const results = (await pipeline.exec()) ?? [];
      const failed = results.filter(([err]) => err).length;
      if (failed > 0) {
        this.log.warn({ err: results.find(([err]) => err)?.[0], failed, total: items.length }, 'publishMany: some publishes failed');
      }
    } catch (err) {
      this.log.warn({ err, total: items.length }, 'publishMany failed; the wake-ups are lost');
    }
  }

  async subscribe(channel: string, handler: Handler): Promise<void> {
    this.checkOpen();
    const name = this.prefix + channel;
    const ch = this.channelOf(name);
    ch.handlers.push(handler);
    try {
      await this.sync(name, ch);
    } catch (err) {
      // The caller learns it is not subscribed; drop the handler so our state says the same.
      removeOne(ch.handlers, handler);
      this.sync(name, ch).catch(() => {});
      throw err;
    }
  }

  async unsubscribe(channel: string, handler: Handler): Promise<void> {
    const name = this.prefix + channel;
    const ch = this.channels.get(name);
    if (!ch || !removeOne(ch.handlers, handler)) return;
    if (this.closed) return;
    // Harmless if it fails: messages on a channel without handlers are dropped; the next sync retries.
    const done = this.sync(name, ch).catch((err: unknown) => this.log.warn({ err, channel }, 'UNSUBSCRIBE failed'));
    // While Redis is away the UNSUBSCRIBE waits for a reconnect; callers (a shutdown among them)
    // need not: the handler is already gone
    if (this.sub.status === 'ready') await done;
  }

  onResume(listener: () => void): () => void {
    this.resumeListeners.add(listener);
    return () => {
      this.resumeListeners.delete(listener);
    };
  }

  private resumed(): void {
    this.log.info({ channels: this.channels.size }, 'pub/sub resumed after a gap; waiters re-read');
    for (const listener of [...this.resumeListeners]) {
      try {
        listener();
      } catch (err) {
        this.log.error({ err }, 'resume listener threw');
      }
    }
  }

  private channelOf(name: string): Channel {
    let ch = this.channels.get(name);
    if (!ch) {
      ch = { handlers: [], live: false, queue: Promise.resolve(), pending: 0 };
      this.channels.set(name, ch);
    }
    return ch;
  }

  /**
   * Bring Redis in line with the handlers present when this step runs. Steps of one channel are
   * chained, so a subscribe racing an unsubscribe cannot interleave SUBSCRIBE and UNSUBSCRIBE out of
   * order: the last step sees the last handlers, and the end state matches them. A subscribe's
   * step runs after every earlier step, so when it resolves the channel is live (if still wanted).
   */
  private sync(name: string, ch: Channel): Promise<void> {
    ch.pending++;
    const step = ch.queue.then(async () => {
      const want = ch.handlers.length > 0 && !this.closed;
      if (want && !ch.live) {
        await this.sub.subscribe(name);
        ch.live = true;
      } else if (!want && ch.live && !this.closed) {
        await this.sub.unsubscribe(name);
        ch.live = false;
      }
    });
    ch.queue = step.catch(() => {});
    return step.finally(() => {
      ch.pending--;
      if (ch.pending === 0 && ch.handlers.length === 0 && !ch.live && this.channels.get(name) === ch) {
        this.channels.delete(name);
      }
    });
  }

  private dispatch(name: string, payload: string): void {
    const ch = this.channels.get(name);
    if (!ch) return;
    // A copy: a handler may unsubscribe itself (or another) while we iterate.
    for (const handler of ch.handlers.slice()) {
      try {
        handler(payload);
      } catch (err) {
        this.log.error({ err, channel: name }, 'bus handler threw');
      }
    }
  }

  async heartbeat(userId: string, nodeId: string, atMs: number): Promise<boolean> {
    this.checkOpen();
    const added = await heartbeatScript.run(this.cmd, [this.presenceLast, this.presenceNode], [userId, atMs, nodeId]);
    return added === 1;
  }

  async lastHeartbeats(userIds: readonly string[]): Promise<Map<string, number>> {
    this.checkOpen();
    const out = new Map<string, number>();
    if (userIds.length === 0) return out;
    const scores = await this.cmd.zmscore(this.presenceLast, ...userIds);
    scores.forEach((score, i) => {
      if (score !== null) out.set(userIds[i]!, Number(score));
    });
    return out;
  }

  async sweepExpired(beforeMs: number, max: number): Promise<Array<{ userId: string; lastMs: number }>> {
    this.checkOpen();
    if (!(max >= 1)) return [];
    const flat = (await sweepScript.run(this.cmd, [this.presenceLast, this.presenceNode], [beforeMs, Math.floor(max)])) as string[];
    const out: Array<{ userId: string; lastMs: number }> = [];
    for (let i = 0; i < flat.length; i += 2) out.push({ userId: flat[i]!, lastMs: Number(flat[i + 1]) });
    return out;
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

  async incr(key: string, ttlMs: number): Promise<number> {
    this.checkOpen();
    return Number(await incrScript.run(this.cmd, [this.key(key)], [ttl(ttlMs)]));
  }

  async lockAndGet(lockKey: string, token: string, ttlMs: number, key: string): Promise<{ locked: boolean; value: string | null }> {
    this.checkOpen();
    const r = (await lockGetScript.run(this.cmd, [this.key(lockKey), this.key(key)], [token, ttl(ttlMs)])) as [number, (string | null)?];
    // A nil GET ends the Lua table early: {1} means locked, no value.
    return r[0] === 1 ? { locked: true, value: r[1] ?? null } : { locked: false, value: null };
  }

  async unlockWith(lockKey: string, token: string, write: { key: string; value: string | null; ttlMs: number } | null): Promise<boolean> {
    this.checkOpen();
    const mode = write === null ? '-' : write.value === null ? '0' : '1';
    const done = await unlockWithScript.run(
      this.cmd,
      [this.key(lockKey), this.key(write?.key ?? lockKey)],
      [token, mode, write?.value ?? '', mode === '1' ? ttl(write!.ttlMs) : 0],
    );
    return Number(done) === 1;
  }

  async ping(): Promise<boolean> {
    if (this.closed || this.cmd.status !== 'ready') return false;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), PING_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.cmd.ping().then((r) => r === 'PONG', () => false), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.channels.clear();
    this.resumeListeners.clear();
    await Promise.all([quit(this.cmd), quit(this.sub)]);
  }
}

/** Log connection trouble; ioredis reconnects (and re-subscribes) by itself. */
function watch(redis: Redis, log: Logger): void {
  let lost = false;
  // An 'error' listener also stops ioredis from printing "Unhandled error event".
  redis.on('error', (err: Error) => log.warn({ err }, 'redis connection error'));
  redis.on('reconnecting', (delayMs: number) => {
    lost = true;
    log.warn({ delayMs }, 'redis connection lost; reconnecting');
  });
  redis.on('ready', () => {
    if (lost) log.info('redis connection back (subscriptions restored)');
    lost = false;
  });
}

async function quit(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  // Not connected (Redis down): QUIT would wait in the offline queue through every reconnect
  // attempt, holding a shutdown for seconds; drop the connection instead
  if (redis.status !== 'ready') return void redis.disconnect();
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}

/** Validate a time-to-live: Redis rejects PX 0 and fractions, and a silent default would hide a bug. */
function ttl(ttlMs: number): number {
  if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive number, got ${ttlMs}`);
  return Math.ceil(ttlMs);
}

/** Remove one registration of handler; false when it was not there. */
function removeOne(handlers: Handler[], handler: Handler): boolean {
  const i = handlers.lastIndexOf(handler);
  if (i < 0) return false;
  handlers.splice(i, 1);
  return true;
}
