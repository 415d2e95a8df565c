import type { Scripted } from './redis-scripts.js';

/**
 * Buckets of presence on a Redis Cluster: each user's heartbeat lives in one of them (by a hash
 * of the user id), so that heartbeats spread over the shards instead of all landing on one
 * sorted set and one hash. 16: a few per shard of a large cluster; a sweep reads each once.
 */
const CLUSTER_BUCKETS = 16;

/** Peek-and-claim rounds of one sweep at most (each round claims something, or others did). */
const SWEEP_ROUNDS = 8;

/** One bucket: a sorted set (user → last heartbeat ms) and a hash (user → node), in one slot. */
interface Bucket {
  last: string;
  node: string;
}

/**
 * Presence heartbeats over Redis (see Bus.heartbeat). One server: one bucket, the keys
 * `presence:last` and `presence:node` as before. A cluster: CLUSTER_BUCKETS buckets, each pair
 * of keys sharing a hash tag `{p<n>}`, so each script's two keys are in one slot.
 */
export class RedisPresence {
  private readonly buckets: Bucket[];

  constructor(private readonly cmd: Scripted, prefix: string, cluster: boolean) {
    this.buckets = cluster
      ? Array.from({ length: CLUSTER_BUCKETS }, (_, i) => ({ last: `${prefix}presence:{p${i}}:last`, node: `${prefix}presence:{p${i}}:node` }))
      : [{ last: `${prefix}presence:last`, node: `${prefix}presence:node` }];
  }

  private bucketOf(userId: string): Bucket {
    if (this.buckets.length === 1) return this.buckets[0]!;
    let h = 0;
    for (let i = 0; i < userId.length; i++) h = (h * 31 + userId.charCodeAt(i)) >>> 0;
    return this.buckets[h % this.buckets.length]!;
  }

  async heartbeat(userId: string, nodeId: string, atMs: number): Promise<boolean> {
    const b = this.bucketOf(userId);
    return (await this.cmd.parleyHeartbeat(b.last, b.node, userId, atMs, nodeId)) === 1;
  }

  async lastHeartbeats(userIds: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const byBucket = new Map<Bucket, string[]>();
    for (const u of userIds) {
      const b = this.bucketOf(u);
      byBucket.set(b, [...(byBucket.get(b) ?? []), u]);
    }
    await Promise.all(
      [...byBucket].map(async ([b, users]) => {
        const scores = await this.cmd.zmscore(b.last, ...users);
        scores.forEach((score, i) => {
          if (score !== null) out.set(users[i]!, Number(score));
        });
      }),
    );
    return out;
  }

  /**
   * Claim up to max expired heartbeats, oldest first. One bucket: one script. Several: peek at
   * each bucket's oldest, keep the oldest `max` of all, and have each bucket's script give as
   * many (each member is removed by exactly one script, so two nodes never both get one).
   */
  async sweepExpired(beforeMs: number, max: number): Promise<Array<{ userId: string; lastMs: number }>> {
    if (!(max >= 1)) return [];
    const limit = Math.floor(max);
    if (this.buckets.length === 1) {
      const b = this.buckets[0]!;
      return pairs(await this.cmd.parleySweep(b.last, b.node, beforeMs, limit));
    }
    const out: Array<{ userId: string; lastMs: number }> = [];
    // Another node's sweep may claim what this one peeked at: peek again for what is still wanted
    for (let round = 0; round < SWEEP_ROUNDS && out.length < limit; round++) {
      const want = limit - out.length;
      const peeked = await Promise.all(
        this.buckets.map(async (b) => ({
          b,
          found: pairs(await this.cmd.zrangebyscore(b.last, '-inf', `(${beforeMs}`, 'WITHSCORES', 'LIMIT', 0, want)),
        })),
      );
      const chosen = peeked
        .flatMap(({ b, found }) => found.map((f) => ({ ...f, b })))
        .sort((x, y) => x.lastMs - y.lastMs)
        .slice(0, want);
      if (chosen.length === 0) break;
      // Each bucket gives as many as it holds of the oldest chosen, taking its oldest still
      // there (atomically): a concurrent sweep that took some means the next ones, not none
      const counts = new Map<Bucket, number>();
      for (const c of chosen) counts.set(c.b, (counts.get(c.b) ?? 0) + 1);
      const claimed = await Promise.all([...counts].map(async ([b, n]) => pairs(await this.cmd.parleySweep(b.last, b.node, beforeMs, n))));
      out.push(...claimed.flat());
    }
    return out.sort((x, y) => x.lastMs - y.lastMs);
  }
}

/** [member, score, member, score, …] as records. */
function pairs(flat: string[]): Array<{ userId: string; lastMs: number }> {
  const out: Array<{ userId: string; lastMs: number }> = [];
  for (let i = 0; i < flat.length; i += 2) out.push({ userId: flat[i]!, lastMs: Number(flat[i + 1]) });
  return out;
}
