import type { Cluster, Redis } from 'ioredis';

/**
 * The bus's Lua scripts, as ioredis commands (defineCommand: sent by SHA, in full only when the
 * server does not know it yet). Every script's keys share one hash slot (see redis-keys in
 * redis.ts and redis-presence.ts), so each also runs on a Redis Cluster.
 */
const SCRIPTS = {
  /**
   * A heartbeat: ZADD GT keeps the latest time when two nodes report one user with skewed clocks
   * (an older report must not bring an expiry closer). ZADD answers 1 only when the member is new,
   * which is exactly "the user came online".
   */
  parleyHeartbeat: {
    numberOfKeys: 2,
    lua: `
local added = redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return added`,
  },
  /**
   * Claim expired heartbeats. One script, so Redis runs it atomically: when several nodes sweep at
   * once, each member is read and removed by exactly one of them. '(' makes the bound exclusive.
   */
  parleySweep: {
    numberOfKeys: 2,
    lua: `
local found = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #found, 2 do
  redis.call('ZREM', KEYS[1], found[i])
  redis.call('HDEL', KEYS[2], found[i])
end
return found`,
  },
  /** A counter that expires ttl after its FIRST increment: PEXPIRE NX never moves an existing expiry. */
  parleyIncr: {
    numberOfKeys: 1,
    lua: `
local n = redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
return n`,
  },
  /** Keep a lock for another ARGV[2] ms while it still holds our token (ARGV[1]). */
  parleyExtendLock: {
    numberOfKeys: 1,
    lua: `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`,
  },
  /** Set-if-absent a lock and, when taken, read a key with it. */
  parleyLockGet: {
    numberOfKeys: 2,
    lua: `
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return {1, redis.call('GET', KEYS[2])}
end
return {0}`,
  },
  /**
   * Only while the lock still holds our token (ARGV[1]): optionally write (ARGV[2] '1': set ARGV[3]
   * with expiry ARGV[4]; '0': delete), then delete the lock. A writer whose lock expired writes
   * nothing: another holder may have changed the key meanwhile.
   */
  parleyUnlockWith: {
    numberOfKeys: 2,
    lua: `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '1' then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
elseif ARGV[2] == '0' then
  redis.call('DEL', KEYS[2])
end
redis.call('DEL', KEYS[1])
return 1`,
  },
} as const;

type Arg = string | number;

/** A client with the scripts defined on it. */
export type Scripted = (Redis | Cluster) & {
  parleyHeartbeat(zset: string, hash: string, user: string, atMs: Arg, node: string): Promise<number>;
  parleySweep(zset: string, hash: string, beforeMs: Arg, max: Arg): Promise<string[]>;
  parleyIncr(key: string, ttlMs: Arg, by: Arg): Promise<number>;
  parleyExtendLock(lock: string, token: string, ttlMs: Arg): Promise<number>;
  parleyLockGet(lock: string, key: string, token: string, ttlMs: Arg): Promise<[number, (string | null)?]>;
  parleyUnlockWith(lock: string, key: string, token: string, mode: string, value: string, ttlMs: Arg): Promise<number>;
};

/** Define the scripts on a client (once per client). */
export function defineScripts(client: Redis | Cluster): Scripted {
  for (const [name, def] of Object.entries(SCRIPTS)) client.defineCommand(name, def);
  return client as Scripted;
}
