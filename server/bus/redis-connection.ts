import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';
import { defineScripts, type Scripted } from './redis-scripts.js';

/** One Redis server or a Redis Cluster, as ioredis gives them. */
export type Client = Redis | Cluster;

/** The connections of one bus: commands (scripts defined) and pub/sub. */
export interface Connections {
  cmd: Scripted;
  sub: Client;
  /** A Redis Cluster (REDIS_CLUSTER): keys of one call need one hash slot. */
  cluster: boolean;
  /** Sharded pub/sub (SSUBSCRIBE/SPUBLISH, Redis 7+): each shard carries only its own channels. */
  sharded: boolean;
}

/** What opening the connections needs. */
export interface ConnectOptions {
  url: string;
  tls?: ConnectionOptions;
  /** REDIS_URL is one node of a Redis Cluster; the others are discovered. */
  cluster?: boolean;
}

/**
 * Open both connections; rejects (leaving nothing open) when Redis cannot be reached, with the
 * cause (a refused certificate, a wrong password) rather than ioredis's "Connection is closed".
 */
export async function openConnections(opts: ConnectOptions, log: Logger): Promise<Connections> {
  // A command waits through 3 reconnect attempts (~0.3 s), not ioredis's 20 (~10 s): while Redis
  // is away, a request that needs it fails fast with 503 and the client retries.
  const common = { maxRetriesPerRequest: 3, ...(opts.tls ? { tls: opts.tls } : {}) };
  const opened: Client[] = [];
  let cause: Error | undefined;
  const keep = (err: Error) => void (cause ??= err);
  const open = async (make: () => Client, conn: string) => {
    const c = make();
    opened.push(c);
    watch(c, log.child({ conn }));
    c.once('error', keep);
    try {
      await c.connect();
    } finally {
      c.off('error', keep);
    }
    return c;
  };
  try {
    if (!opts.cluster) {
      // Auto-pipelining: commands issued in the same tick (wake-ups, heartbeats, BOSH session steps
      // of many requests) go out in one socket write; on a loaded machine each write is a syscall
      // that costs more than the command.
      // Both settle before any is dropped: a TLS socket dropped mid-handshake throws its late alert uncaught
      const [cmd, sub] = await Promise.allSettled([
        open(() => new Redis(opts.url, { ...common, lazyConnect: true, connectionName: 'parley-cmd', enableAutoPipelining: true }), 'cmd'),
        open(() => new Redis(opts.url, { ...common, lazyConnect: true, connectionName: 'parley-sub' }), 'sub'),
      ]);
      if (cmd.status === 'rejected') throw cmd.reason;
      if (sub.status === 'rejected') throw sub.reason;
      // A cluster node answers PING and then MOVED to most keys: say so at start, not as 500s later
      // (INFO may be disabled on a managed Redis: then nothing is known, and nothing is refused)
      if (/cluster_enabled:1/.test(await cmd.value.info('cluster').catch(() => ''))) {
        throw new Error('REDIS_URL is a node of a Redis Cluster: set REDIS_CLUSTER=on');
      }
      return { cmd: defineScripts(cmd.value), sub: sub.value, cluster: false, sharded: false };
    }
    const u = new URL(opts.url);
    const seed = [{ host: u.hostname, port: Number(u.port || 6379) }];
    const auth = {
      ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
      ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    };
    const cluster = (name: string, sharded: boolean) =>
      new Cluster(seed, {
        lazyConnect: true,
        enableAutoPipelining: !sharded,
        shardedSubscribers: sharded,
        redisOptions: { ...common, ...auth, connectionName: name },
      });
    const cmd = await open(() => cluster('parley-cmd', false), 'cmd');
    const sharded = await hasShardedPubSub(cmd);
    const sub = await open(() => cluster('parley-sub', sharded), 'sub');
    return { cmd: defineScripts(cmd), sub, cluster: true, sharded };
  } catch (err) {
    await new Promise((r) => setImmediate(r)); // the 'error' event may come just after
    // Without this, ioredis would keep retrying in the background and hold the process open.
    for (const c of opened) c.disconnect();
    throw cause ?? err;
  }
}

/** SSUBSCRIBE and SPUBLISH came with Redis 7 (INFO disabled: classic pub/sub, which always works). */
async function hasShardedPubSub(client: Client): Promise<boolean> {
  const info = await client.info('server').catch(() => '');
  const major = Number(/redis_version:(\d+)/.exec(info)?.[1] ?? 0);
  return major >= 7;
}

/** Log connection trouble; ioredis reconnects (and re-subscribes) by itself. */
function watch(client: Client, log: Logger): void {
  let lost = false;
  // An 'error' listener also stops ioredis from printing "Unhandled error event".
  client.on('error', (err: Error) => log.warn({ err }, 'redis connection error'));
  client.on('reconnecting', (delayMs: number) => {
    lost = true;
    log.warn({ delayMs }, 'redis connection lost; reconnecting');
  });
  client.on('ready', () => {
    if (lost) log.info('redis connection back (subscriptions restored)');
    lost = false;
  });
}

/** Close a connection: QUIT when connected, else drop it. */
export async function quit(client: Client): Promise<void> {
  if (client.status === 'end') return;
  // Not connected (Redis down): QUIT would wait in the offline queue through every reconnect
  // attempt, holding a shutdown for seconds; drop the connection instead
  if (client.status !== 'ready') return void client.disconnect();
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}
