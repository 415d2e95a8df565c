import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createApp } from '../../server/app.js';
import { createServer } from '../../server/http/server.js';
import type { Bus } from '../../server/bus/bus.js';
import { LocalBus, LocalHub } from '../../server/bus/local.js';
import { RedisBus } from '../../server/bus/redis.js';
import { loadConfig, type Config } from '../../server/config.js';
import { answerHeld, assemble, disassemble, postgresOptions, redisOptions, redisTls, type Deps } from '../../server/deps.js';
import type { Database } from '../../server/store/db.js';
import { migrate } from '../../server/store/migrate.js';
import { PostgresDatabase } from '../../server/store/postgres.js';
import { sharedEmbedded } from './embedded.js';
import { PG_URL, REDIS_URL, dropPrefix, requireServices, unique } from './services.js';
import { sleep } from './sleep.js';

/** One running Parley node of a test. */
export interface TestNode {
  url: string;
  deps: Deps;
  server: http.Server;
  /** Stop this node as a crash would: connections cut, nothing answered. */
  kill(): Promise<void>;
}

/** Several nodes sharing one database and one bus, as in production. */
export interface Stack {
  nodes: TestNode[];
  config: Config;
  masterKey: Buffer;
  /** The database the nodes share (for tests that read raw tables). */
  db: Database;
  close(): Promise<void>;
}

const silent = pino({ level: process.env['TEST_LOG'] ?? 'silent' });

/**
 * Start `nodes` Parley nodes. `real`: PostgreSQL (a schema of its own) and Redis (a prefix of its
 * own), connected as the configuration says (`env` may point them elsewhere: TLS, PgBouncer);
 * `embedded`: the run's shared PGlite and in-process buses sharing one hub (several nodes in this
 * process, as the multinode suites run without services).
 */
export async function startStack(opts: { nodes?: number; backend: 'real' | 'embedded'; env?: Record<string, string> }): Promise<Stack> {
  const count = opts.nodes ?? 1;
  const schema = unique('t_');
  const prefix = `parley-test-${unique('')}:`;
  const masterKey = randomBytes(32);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'parley-test-'));
  const env = {
    RATE_LIMIT: 'off',
    // scrypt at 2^14, not 2^17: tests register hundreds of users (tests of the cost set it back)
    PASSWORD_COST: '14',
    LOG_LEVEL: 'silent',
    MASTER_KEY: masterKey.toString('hex'),
    DATA_DIR: dataDir,
    ...(opts.backend === 'real' ? { DATABASE_URL: PG_URL, DATABASE_SCHEMA: schema, REDIS_URL, REDIS_PREFIX: prefix } : {}),
    ...opts.env,
  };
  const config = loadConfig(env);
  const nodes: TestNode[] = [];
  const closers: Array<() => Promise<void>> = [async () => rmSync(dataDir, { recursive: true, force: true })];
  let sharedDb: Database;
  const real = opts.backend === 'real' ? { ...config, databaseUrl: config.databaseUrl ?? PG_URL, redisUrl: config.redisUrl ?? REDIS_URL } : undefined;
  if (real) {
    const first = await PostgresDatabase.connect({ ...postgresOptions(real, silent), max: 2 });
    await migrate(first, silent);
    sharedDb = first;
    closers.push(async () => {
      // A stack on its own database (PgBouncer) uses public: the test drops that database
      if (real.databaseSchema !== 'public') await first.exec(`DROP SCHEMA IF EXISTS "${real.databaseSchema}" CASCADE`);
      await first.close();
      await dropPrefix(real.redisPrefix, real.redisUrl, redisTls(real), real.redisCluster);
    });
  } else {
    sharedDb = await sharedEmbedded();
  }
  // In-process nodes see one another's pub/sub, counters and locks through one hub, as through Redis
  const hub = new LocalHub();
  for (let i = 0; i < count; i++) {
    const nodeConfig = { ...config, nodeId: `node-${i}` };
    let db: Database;
    let bus: Bus;
    if (real) {
      db = await PostgresDatabase.connect(postgresOptions(real, silent));
      bus = await RedisBus.connect(redisOptions(real, silent));
    } else {
      db = sharedDb;
      bus = new LocalBus({ log: silent, hub });
    }
    const deps = await assemble(nodeConfig, silent, db, bus, { masterKey, defaultMetrics: false });
    const server = createServer(createApp(deps), nodeConfig);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    let dead = false;
    const stop = async (graceful: boolean) => {
      if (dead) return;
      dead = true;
      if (graceful) await answerHeld(deps);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await disassemble(deps);
      await bus.close();
      if (db !== sharedDb) await db.close();
    };
    nodes.push({ url, deps, server, kill: () => stop(false) });
    closers.unshift(() => stop(true));
  }
  return {
    nodes,
    config,
    masterKey,
    db: sharedDb,
    async close() {
      for (const c of closers) await c();
    },
  };
}

/**
 * Write every node's gathered presence news now. Presence changes are coalesced for a second
 * before they reach streams, so a test that compares two reads of a stream first lets the news of
 * its users coming online land (the wait lets heartbeats in flight reach the bus).
 */
export async function flushPresence(stack: Stack, waitMs = 300): Promise<void> {
  await sleep(waitMs);
  for (const n of stack.nodes) await n.deps.core.presence.flush();
}

/** A suite's stack: started before its tests (real services required in CI, skipped loudly elsewhere), closed after. */
export interface SuiteStack {
  readonly stack: Stack;
  /** The URL of node i. */
  url(i?: number): string;
}

/** Start a stack in the calling suite's before() hook and close it in after(). */
export function useStack(opts: { nodes?: number; backend: 'real' | 'embedded'; env?: Record<string, string> }): SuiteStack {
  let stack: Stack | undefined;
  before(async function () {
    if (opts.backend === 'real') await requireServices(this);
    stack = await startStack(opts);
  });
  after(async () => stack?.close());
  return {
    get stack() {
      if (!stack) throw new Error('the stack is not started yet');
      return stack;
    },
    url: (i = 0) => {
      if (!stack) throw new Error('the stack is not started yet');
      return stack.nodes[i]!.url;
    },
  };
}
