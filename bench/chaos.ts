/**
 * Faults under load (issue 10). Starts its own PostgreSQL (initdb, pg_ctl), its own redis-server,
 * three Parley nodes and nginx in front of them (round-robin, not sticky, unbuffered), all on
 * loopback in a temp dir. Users chat through nginx as real clients do: each holds a long-poll
 * passing its cursor back, sends with a client_id and retries a failed send with the same one
 * until it is acknowledged, and shows a message once by id; a few BOSH clients do the same over
 * /http-bind. While messages flow: kill -9 one node and start it again; restart Redis; stop
 * PostgreSQL for a few seconds; then a few thousand malformed requests. Prints what was lost,
 * shown twice, stored twice, how long each fault cost, and how the junk was answered.
 *
 *   npm run chaos                         # build, then 75 s with 40 users and 4 BOSH clients
 *   npm run chaos -- --short              # under 2 minutes in all (what CI runs)
 *   node --import tsx bench/chaos.ts --duration 30 --users 10 --server tsx
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { projectPath } from '../server/paths.js';
import { BoshUser } from './lib/chaos-bosh.js';
import { Ledger, PollingUser, type Fault } from './lib/chaos-users.js';
import { NodeClient } from './lib/client.js';
import { missingPrograms, Nginx, Postgres, RedisServer, type RedisRestart } from './lib/cluster.js';
import { missed, print, report, type Report } from './lib/chaos-report.js';
import { flood } from './lib/malformed.js';
import { freePort, startNode, stopNode, waitReady, type RunningNode, type ServerMode } from './lib/nodes.js';
import { runPool } from './lib/pool.js';
import { sleep } from './lib/sleep.js';

const say = (msg: string): void => void process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);

/** 35 s: above the 20 s a poll asks to be held (and the 25 s the server allows), so nginx never cuts a parked poll. */
const PROXY_READ_TIMEOUT_S = 35;
/** After the senders stop: how long receivers get to catch up before what is missing counts as lost. */
const DRAIN_MS = 15_000;
const READY_TIMEOUT_MS = 60_000;

function options() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string' },
      users: { type: 'string' },
      bosh: { type: 'string' },
      interval: { type: 'string', default: '600' },
      malformed: { type: 'string' },
      'pg-down': { type: 'string' },
      'redis-down': { type: 'string', default: '2' },
      'redis-restart': { type: 'string', default: 'save' },
      short: { type: 'boolean', default: false },
      server: { type: 'string', default: import.meta.url.includes('/dist/') ? 'dist' : 'tsx' },
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
  });
  const num = (v: string | undefined, dflt: number, min: number, max: number, name: string) => {
    const n = v === undefined ? dflt : Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be a number in ${min}..${max}`);
    return n;
  };
  const short = values.short;
  const o = {
    short,
    durationS: num(values.duration, short ? 40 : 75, 20, 600, 'duration'),
    users: num(values.users, short ? 12 : 40, 2, 400, 'users'),
    bosh: num(values.bosh, short ? 2 : 4, 0, 50, 'bosh'),
    intervalMs: num(values.interval, 600, 50, 60_000, 'interval'),
    malformed: num(values.malformed, short ? 800 : 3000, 0, 100_000, 'malformed'),
    pgDownS: num(values['pg-down'], short ? 4 : 6, 1, 60, 'pg-down'),
    redisDownS: num(values['redis-down'], 2, 0, 60, 'redis-down'),
    redisRestart: values['redis-restart'] as RedisRestart,
    server: values.server as ServerMode,
    json: values.json,
    keep: values.keep,
  };
  if (o.users % 2) throw new Error('--users must be even (users chat in pairs)');
  if (o.redisRestart !== 'save' && o.redisRestart !== 'empty') throw new Error('--redis-restart is save or empty');
  if (o.server !== 'dist' && o.server !== 'tsx') throw new Error('--server is dist or tsx');
  return o;
}
type Options = ReturnType<typeof options>;

/** Everything started, stopped in reverse order at the end, after a failure, and on Ctrl-C. */
class Teardown {
  private readonly steps: Array<[string, () => Promise<void> | void]> = [];
  private running: Promise<void> | null = null;
  add(what: string, fn: () => Promise<void> | void): void {
    this.steps.push([what, fn]);
  }
  run(): Promise<void> {
    this.running ??= (async () => {
      for (const [what, fn] of this.steps.reverse()) {
        try {
          await fn();
        } catch (err) {
          say(`teardown: ${what}: ${(err as Error).message}`);
        }
      }
    })();
    return this.running;
  }
}

/** A node of the run: its spec, so it can be started again on its port after a kill. */
type Slot = { id: string; port: number; node: RunningNode; env: Record<string, string>; killed: boolean; unexpectedExits: number };

async function main(o: Options, teardown: Teardown): Promise<Report> {
  const root = projectPath('.');
  const missing = missingPrograms();
  if (missing.length) throw new Error(`missing: ${missing.join('; ')}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-chaos-'));
  teardown.add('temp dir', () => (o.keep ? say(`kept ${dir}`) : rmSync(dir, { recursive: true, force: true })));
  say(`temp dir ${dir}; ${o.users} users, ${o.bosh} BOSH clients, ${o.durationS} s, nodes from ${o.server}`);

  const postgres = await Postgres.create(path.join(dir, 'pg'));
  teardown.add('postgres', () => postgres.stop('immediate'));
  const redis = await RedisServer.create(path.join(dir, 'redis'), o.redisRestart);
  teardown.add('redis', () => redis.stop());
  say(`PostgreSQL on ${postgres.port}, Redis on ${redis.port}`);

  const masterKey = randomBytes(32).toString('hex');
  const slots: Slot[] = [];
  for (const id of ['a', 'b', 'c']) {
    const port = await freePort();
    const env = {
      DATABASE_URL: postgres.url,
      REDIS_URL: redis.url,
      MASTER_KEY: masterKey,
      NODE_ID: `chaos-${id}`,
      RATE_LIMIT: 'off',
      LOG_LEVEL: 'warn',
      DATA_DIR: path.join(dir, `data-${id}`),
      BLOB_DIR: path.join(dir, 'blobs'),
      TRUST_PROXY: '1',
    };
    slots.push({ id, port, env, node: undefined as unknown as RunningNode, killed: false, unexpectedExits: 0 });
  }
  const launch = (s: Slot) => {
    s.node = startNode({ id: s.id, root, mode: o.server, env: s.env, logFile: path.join(dir, `node-${s.id}.log`) }, s.port);
    const mine = s.node;
    void mine.exited.then((code) => {
      if (s.node === mine && !s.killed && !stopping) {
        s.unexpectedExits++;
        say(`node ${s.id} exited unexpectedly (${code}); see ${mine.logFile}`);
      }
    });
  };
  let stopping = false;
  teardown.add('nodes', async () => {
    stopping = true;
    await Promise.all(slots.filter((s) => s.node).map((s) => stopNode(s.node, 6_000)));
  });
  // The first node migrates the fresh database; the others start once it is ready.
  launch(slots[0]!);
  await waitReady(slots[0]!.node, READY_TIMEOUT_MS);
  for (const s of slots.slice(1)) launch(s);
  await Promise.all(slots.slice(1).map((s) => waitReady(s.node, READY_TIMEOUT_MS)));
  const nginx = await Nginx.create(path.join(dir, 'nginx'), slots.map((s) => s.port), PROXY_READ_TIMEOUT_S);
  teardown.add('nginx', () => nginx.stop());
  say(`nodes on ${slots.map((s) => s.port).join(', ')}; nginx on ${nginx.port}`);

  const client = new NodeClient('127.0.0.1', nginx.port, 4 * (o.users + o.bosh) + 32);
  teardown.add('client sockets', () => client.close());
  const ledger = new Ledger();
  const users = Array.from({ length: o.users }, (_, i) => new PollingUser(client, ledger, `u${i}-${randomBytes(3).toString('hex')}`, o.intervalMs));
  // BOSH users chat with a long-poll user of their own (the pair's other half), so both sides are checked.
  const boshPairs = Array.from({ length: o.bosh }, (_, i) => ({
    bosh: new BoshUser(nginx.port, ledger, `b${i}-${randomBytes(3).toString('hex')}`, o.intervalMs),
    json: new PollingUser(client, ledger, `j${i}-${randomBytes(3).toString('hex')}`, o.intervalMs),
  }));
  const everyone = [...users, ...boshPairs.flatMap((p) => [p.json])];
  say('registering users…');
  await runPool([...everyone, ...boshPairs.map((p) => p.bosh)], 6, (u) => u.register());
  for (let i = 0; i < users.length; i += 2) await users[i]!.pairWith(users[i + 1]!);
  for (const p of boshPairs) await p.json.pairWith(p.bosh);
  const victim = await new PollingUser(client, ledger, `m-${randomBytes(3).toString('hex')}`, 0).registerVictim(users[0]!);

  // Go: polls first, then sends.
  ledger.t0 = performance.now();
  for (const u of everyone) u.startPolling();
  for (const p of boshPairs) await p.bosh.connect();
  await sleep(1000);
  for (const u of everyone) u.startSending();
  for (const p of boshPairs) p.bosh.startSending(p.json.name);

  const D = o.durationS * 1000;
  const at = async (share: number) => {
    const wait = ledger.t0 + 1000 + share * D - performance.now();
    if (wait > 0) await sleep(wait);
  };
  const faults: Fault[] = [];

  // 1. kill -9 one node, start it again 2 s later.
  await at(0.12);
  const victimNode = slots[1]!;
  say(`kill -9 node ${victimNode.id}`);
  let f: Fault = { name: `kill -9 node ${victimNode.id}`, start: ledger.now(), back: 0 };
  victimNode.killed = true;
  victimNode.node.child.kill('SIGKILL');
  await victimNode.node.exited;
  f.back = ledger.now(); // the fault is the kill itself: the clients' recovery counts from it
  faults.push(f);
  await sleep(2000);
  launch(victimNode);
  victimNode.killed = false;
  await waitReady(victimNode.node, READY_TIMEOUT_MS);
  f.rejoined = ledger.now();
  say(`node ${victimNode.id} is back`);

  // 2. restart Redis.
  await at(0.32);
  say(`Redis restart (${o.redisRestart}), down ${o.redisDownS} s`);
  f = { name: `Redis restart (${o.redisRestart})`, start: ledger.now(), back: 0 };
  await redis.stop();
  await sleep(o.redisDownS * 1000);
  await redis.start();
  f.back = ledger.now();
  faults.push(f);

  // 3. stop PostgreSQL for a few seconds.
  await at(0.52);
  say(`PostgreSQL down for ${o.pgDownS} s`);
  f = { name: `PostgreSQL down ${o.pgDownS} s`, start: ledger.now(), back: 0 };
  await postgres.stop('fast');
  await sleep(o.pgDownS * 1000);
  await postgres.start();
  f.back = ledger.now();
  faults.push(f);
  say('PostgreSQL is back');

  // 4. junk, well after the last fault so its answers are judged outside any fault window.
  await at(0.72);
  const quietFrom = f.back + 6_000 - ledger.now();
  if (quietFrom > 0) await sleep(quietFrom);
  say(`${o.malformed} malformed requests…`);
  const junkFrom = ledger.now();
  const junk = await flood(nginx.port, victim, o.malformed, 8, () => ledger.now());
  say(`junk done in ${((ledger.now() - junkFrom) / 1000).toFixed(1)} s`);

  await at(1);
  say('senders stop; draining');
  for (const u of everyone) u.stopSending();
  for (const p of boshPairs) p.bosh.stopSending();
  await Promise.all([...everyone.map((u) => u.sendsSettled()), ...boshPairs.map((p) => p.bosh.sendsSettled())]);
  const drainUntil = performance.now() + DRAIN_MS;
  while (performance.now() < drainUntil && ledger.missing() > 0) await sleep(250);
  for (const u of everyone) u.stopPolling();
  for (const p of boshPairs) p.bosh.stop();
  if (o.keep) for (const p of boshPairs) writeFileSync(path.join(dir, `bosh-${p.bosh.name}.trace`), p.bosh.trace.join('\n'));

  // Stored twice: the same client_id of one sender in one conversation more than once.
  const db = new pg.Client({ connectionString: postgres.url });
  await db.connect();
  let storedTwice: number;
  let stored: number;
  try {
    storedTwice = Number(
      (await db.query('SELECT count(*) AS n FROM (SELECT 1 FROM messages WHERE client_id IS NOT NULL GROUP BY conversation_id, sender_id, client_id HAVING count(*) > 1) d')).rows[0].n,
    );
    stored = Number((await db.query("SELECT count(*) AS n FROM messages WHERE client_id LIKE 'ch-%'")).rows[0].n);
  } finally {
    await db.end();
  }
  let alive = 0;
  for (const s of slots) {
    try {
      await waitReady(s.node, 3_000);
      alive++;
    } catch {
      // counted as dead
    }
  }
  return report(o, ledger, faults, junk, { storedTwice, stored, alive, unexpectedExits: slots.reduce((n, s) => n + s.unexpectedExits, 0) });
}

const teardown = new Teardown();
let interrupted = false;
const abort = (why: string, code: number) => {
  if (interrupted) return;
  interrupted = true;
  say(`${why}: stopping everything`);
  void teardown.run().then(() => process.exit(code));
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => abort(sig, 130));
process.on('uncaughtException', (err) => {
  console.error(err);
  abort('uncaught exception', 1);
});
let o: Options;
try {
  o = options();
} catch (err) {
  console.error((err as Error).message);
  process.exit(2);
}
// Bounded: the whole run must end; a hung step is cut by this and torn down like Ctrl-C.
const hardLimit = setTimeout(() => {
  say('the run took too long; stopping everything');
  void teardown.run().then(() => process.exit(3));
}, (o.durationS + 120) * 1000);
hardLimit.unref();
main(o, teardown)
  .then(async (r) => {
    await teardown.run();
    print(r);
    if (o.json) writeFileSync(o.json, JSON.stringify(r, null, 2));
    process.exit(missed(r).length ? 1 : 0);
  })
  .catch(async (err: unknown) => {
    if (!interrupted) console.error(err); // after Ctrl-C, steps fail because their services are gone
    await teardown.run();
    process.exit(1);
  });
