import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { Cluster, Redis } from 'ioredis';

/** Real services for the tests; CI sets CI=true and then they are required, never skipped. */
export const PG_URL = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const IN_CI = Boolean(process.env['CI']);

/** A name unique to this test run: schemas, key prefixes and user names carry it. */
export const RUN = randomBytes(4).toString('hex');

let counter = 0;
/** A fresh identifier for a test object (user name, schema). */
export function unique(prefix: string): string {
  counter++;
  return `${prefix}${RUN}${counter.toString(36)}`;
}

function reachable(url: string, fallbackPort: number): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || fallbackPort) });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

const cache = new Map<string, Promise<boolean>>();

/**
 * Skip the suite when PostgreSQL and Redis are not there, loudly; in CI, fail instead.
 * Call from a before() hook with its `this`.
 */
export async function requireServices(ctx: Mocha.Context): Promise<void> {
  const key = 'both';
  if (!cache.has(key)) {
    cache.set(key, Promise.all([reachable(PG_URL, 5432), reachable(REDIS_URL, 6379)]).then(([a, b]) => a && b));
  }
  if (await cache.get(key)) return;
  if (IN_CI) throw new Error(`PostgreSQL (${PG_URL}) and Redis (${REDIS_URL}) are required in CI`);
  console.warn(`\n!!! SKIPPING real-service tests: PostgreSQL at ${PG_URL} or Redis at ${REDIS_URL} is not reachable\n`);
  ctx.skip();
}

/** Drop a Postgres schema made by a test. */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** Delete every Redis key under a prefix (of the test Redis, or of another one; of each master of a cluster). */
export async function dropPrefix(prefix: string, url = REDIS_URL, tls?: ConnectionOptions, cluster = false): Promise<void> {
  const options = { lazyConnect: true, ...(tls ? { tls } : {}) };
  if (cluster) {
    const u = new URL(url);
    const c = new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], { lazyConnect: true, redisOptions: options });
    await c.connect();
    try {
      await Promise.all(c.nodes('master').map((node) => dropOn(node, prefix)));
    } finally {
      c.disconnect();
    }
    return;
  }
  const redis = new Redis(url, options);
  await redis.connect();
  try {
    await dropOn(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

async function dropOn(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
    cursor = next;
    // One DEL per key: on a cluster node, keys of one DEL must share a slot
    await Promise.all(keys.map((k) => redis.del(k)));
  } while (cursor !== '0');
}
