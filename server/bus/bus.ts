/**
 * The Bus: what nodes share besides the database. Wake-ups (pub/sub), presence heartbeats and a
 * small key-value store with expiry. Two implementations behind this one interface: Redis
 * (ioredis, several nodes) and in-process (the embedded single node). Pub/sub carries nothing
 * that is not also in the database: a lost message costs latency, never data.
 */
export interface Bus {
  /** Publish a payload on a channel. Resolves when handed to the transport; delivery is best effort. */
  publish(channel: string, payload: string): Promise<void>;
  /** Publish several (channel, payload) pairs in one round trip. */
  publishMany(items: ReadonlyArray<readonly [channel: string, payload: string]>): Promise<void>;
  /**
   * Add a handler for a channel. Resolves only once the subscription is live, so that a read
   * made after it cannot miss a publish made after the read. Several handlers per channel are fine.
   */
  subscribe(channel: string, handler: (payload: string) => void): Promise<void>;
  /** Remove a handler; the channel itself is dropped when its last handler goes. */
  unsubscribe(channel: string, handler: (payload: string) => void): Promise<void>;
  /**
   * Call listener each time pub/sub is live again after a gap (a lost Redis connection) during
   * which publishes may have been missed: waiters should re-read the database then. Returns a
   * function that removes the listener. The in-process bus never has a gap.
   */
  onResume(listener: () => void): () => void;

  /**
   * Record a heartbeat of user on node at atMs (user → node → time, plus a sorted set by time).
   * Resolves true when the user had no live heartbeat before (a transition to online).
   */
  heartbeat(userId: string, nodeId: string, atMs: number): Promise<boolean>;
  /** The last heartbeat (ms) of each user that is currently online; absent users are offline. */
  lastHeartbeats(userIds: readonly string[]): Promise<Map<string, number>>;
  /**
   * Atomically remove and return up to `max` users whose last heartbeat is before `beforeMs`.
   * With several nodes sweeping at once, each expiry is returned to exactly one caller.
   */
  sweepExpired(beforeMs: number, max: number): Promise<Array<{ userId: string; lastMs: number }>>;

  /** Shared key-value with expiry (BOSH sessions, rate limits). */
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Set only if absent; resolves true when this call set it. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  del(key: string): Promise<void>;
  /**
   * Lock and read in one round trip: set `lockKey` to `token` (expiring after ttlMs) only if it
   * is absent; when that succeeded, also return the value of `key`. (BOSH sessions: lock, load.)
   * The two keys end in the same segment after their last `:` (`bosh:l:SID`, `bosh:s:SID`): on a
   * Redis Cluster that segment is the keys' hash tag, putting them in one slot. So for unlockWith.
   */
  lockAndGet(lockKey: string, token: string, ttlMs: number, key: string): Promise<{ locked: boolean; value: string | null }>;
  /**
   * Write and unlock in one round trip, only while `lockKey` still holds `token`: then optionally
   * set `key` (value null deletes it) and delete the lock; resolves true. A lock that expired (and
   * perhaps was taken by another) is left alone and nothing is written; resolves false.
   */
  unlockWith(lockKey: string, token: string, write: { key: string; value: string | null; ttlMs: number } | null): Promise<boolean>;
  /**
   * Keep a lock this holder still has (`lockKey` holds `token`) for another ttlMs; resolves false,
   * changing nothing, when the lock is gone or another's. A long locked section renews its lock
   * so that it is not taken from under it.
   */
  extendLock(lockKey: string, token: string, ttlMs: number): Promise<boolean>;
  /**
   * Add `by` (default 1; negative gives back) to a counter that expires ttlMs after its first
   * increment; resolves the new value.
   */
  incr(key: string, ttlMs: number, by?: number): Promise<number>;

  /** True when the backing service answers (readiness). */
  ping(): Promise<boolean>;
  /** Close every connection; pending subscriptions are dropped. */
  close(): Promise<void>;
}
