import { Redis } from 'ioredis';
import pg from 'pg';

/**
 * The run's footprint in the shared services: its own Postgres schema and Redis key prefix,
 * removed at the end (also after a failure or Ctrl-C), so runs never see each other's data.
 */

/** Drop the run's schema and everything in it. */
export async function dropSchema(databaseUrl: string, schema: string): Promise<void> {
  if (!/^bench_[a-z0-9_]+$/.test(schema)) throw new Error(`refusing to drop schema ${schema}: not a benchmark schema`);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** Delete every Redis key under the run's prefix; returns how many were deleted. */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<number> {
  if (!/^bench-[a-z0-9]+:$/.test(prefix)) throw new Error(`refusing to delete keys under ${prefix}: not a benchmark prefix`);
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  await redis.connect();
  let deleted = 0;
  try {
    let cursor = '0';
    // Bounded: SCAN visits each key at most a few times; 100,000 rounds of 1,000 is far past any run.
    for (let round = 0; round < 100_000; round++) {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length) deleted += await redis.unlink(...keys);
      cursor = next;
      if (cursor === '0') break;
    }
  } finally {
    redis.disconnect();
  }
  return deleted;
}

/** Check both services answer before starting nodes, so a missing service fails fast and clearly. */
export async function checkServices(databaseUrl: string, redisUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (e) {
    throw new Error(`PostgreSQL not reachable at ${databaseUrl}: ${(e as Error).message}`);
  } finally {
    await client.end().catch(() => undefined);
  }
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 3000, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (e) {
    throw new Error(`Redis not reachable at ${redisUrl}: ${(e as Error).message}`);
  } finally {
    redis.disconnect();
  }
}
