/**
 * The load benchmark in BOSH mode: the long-poll workload of bench/load.ts (two nodes on PostgreSQL
 * and Redis, N users in pairs across the nodes, S closed-loop senders of 1-to-1 messages), but each
 * user is an XMPP client over BOSH (SASL PLAIN, bind, initial presence, hold=1) whose requests
 * ALTERNATE between the two nodes, as behind a load balancer that is not sticky.
 *
 * Prints delivered messages/s, end-to-end latency, losses, sessions lost, memory per idle session
 * (node RSS and the session's Redis key), and beside them the newest long-poll report in bench/out
 * with the same user count. Writes bench/out/bosh-<date>.json.
 *
 *   node --import tsx bench/bosh.ts --users 200 --senders 20 --seconds 10
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { projectPath } from '../server/paths.js';
import { Bench, DOMAIN, Session, type Rec } from './lib/bosh-session.js';
import { NodeClient } from './lib/client.js';
import { rssBytes, stopNode, type RunningNode } from './lib/nodes.js';
import { runPool } from './lib/pool.js';
import { onInterrupt, runMain, startPair } from './lib/run.js';
import { checkServices, deleteKeys, dropSchema } from './lib/services.js';
import { sleep } from './lib/sleep.js';
import { ms, round, summarise } from './lib/stats.js';
import { Workload } from './lib/workload.js';

/** The issue's targets: within 30% of long-poll throughput, under 40 KiB per idle session, no session lost. */
const TARGETS = { throughputShareOfLongPoll: 0.7, kibPerSession: 40, sessionsLost: 0 };
const STOP_GRACE_MS = 15_000;
const READY_TIMEOUT_MS = 60_000;

const say = (msg: string): void => void process.stderr.write(`[bosh ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);

function options() {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '200' },
      senders: { type: 'string', default: '20' },
      seconds: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '2' },
      idle: { type: 'string', default: '3' },
      drain: { type: 'string', default: '10' },
      'text-bytes': { type: 'string', default: '64' },
      server: { type: 'string', default: 'tsx' },
      profile: { type: 'boolean', default: false },
      'setup-concurrency': { type: 'string', default: '16' },
      'database-url': { type: 'string', default: process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test' },
      'redis-url': { type: 'string', default: process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379' },
    },
  });
  const num = (k: keyof typeof values, min: number, max: number) => {
    const n = Number(values[k]);
    if (!Number.isFinite(n) || n < min || n > max) {
      console.error(`--${String(k)} must be a number in ${min}..${max}`);
      process.exit(2);
    }
    return n;
  };
  const o = {
    users: num('users', 2, 5000),
    senders: num('senders', 1, 500),
    seconds: num('seconds', 1, 120),
    warmup: num('warmup', 0, 30),
    idle: num('idle', 0, 15),
    drain: num('drain', 0, 60),
    textBytes: num('text-bytes', 0, 8000),
    setupConcurrency: num('setup-concurrency', 1, 200),
    server: values.server === 'dist' ? ('dist' as const) : ('tsx' as const),
    profile: values.profile === true,
    databaseUrl: values['database-url']!,
    redisUrl: values['redis-url']!,
  };
  if (o.users % 2) {
    console.error('--users must be even');
    process.exit(2);
  }
  return o;
}

/** The newest closed-loop, unprofiled long-poll report with this many users, for the side-by-side figures. */
function longPollReport(outDir: string, users: number): any | undefined {
  if (!existsSync(outDir)) return undefined;
  const files = readdirSync(outDir).filter((f) => f.startsWith('load-') && f.endsWith('.json')).sort().reverse();
  for (const f of files) {
    try {
      const r = JSON.parse(readFileSync(path.join(outDir, f), 'utf8'));
      if (r.options?.users === users && !r.options?.rate && !r.options?.profile) return { file: f, ...r };
    } catch {
      /* a partial file */
    }
  }
  return undefined;
}

async function main(): Promise<number> {
  const o = options();
  const root = projectPath();
  const tag = randomBytes(5).toString('hex');
  const schema = `bench_${tag}`;
  const prefix = `bench-${tag}:`;
  const outDir = path.join(root, 'bench/out');
  mkdirSync(outDir, { recursive: true });
  const nodes: RunningNode[] = [];
  const clients: NodeClient[] = [];
  const sessions: Session[] = [];
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const s of sessions) if (s) s.stopped = true; // sparse while sessions open
    for (const c of clients) c.close();
    await Promise.all(nodes.map((n) => stopNode(n, STOP_GRACE_MS).catch(() => undefined)));
    await dropSchema(o.databaseUrl, schema).catch((e) => say(`drop schema: ${(e as Error).message}`));
    const n = await deleteKeys(o.redisUrl, prefix).catch(() => 0);
    say(`cleaned up: schema ${schema} dropped, ${n} Redis keys deleted`);
  };
  onInterrupt(nodes, cleanup, say);
  try {
    await checkServices(o.databaseUrl, o.redisUrl);
    const ports = await startPair(
      {
        root,
        mode: o.server,
        databaseUrl: o.databaseUrl,
        redisUrl: o.redisUrl,
        schema,
        prefix,
        masterKey: randomBytes(32).toString('hex'),
        logFile: (id) => path.join(outDir, `bosh-node-${id}-${tag}.log`),
        profileDir: o.profile ? path.join(outDir, `prof-bosh-${tag}`) : undefined,
        env: () => ({ PARLEY_DOMAIN: DOMAIN }),
        readyTimeoutMs: READY_TIMEOUT_MS,
        say,
      },
      nodes,
    );
    const sockets = o.users * 2 + o.senders + 64;
    for (const p of ports) clients.push(new NodeClient('127.0.0.1', p, sockets));
    const password = `bench-${tag}`;
    const w = new Workload(clients, { users: o.users, wait: 20, textBytes: o.textBytes, requestTimeoutMs: 30_000, runTag: `b${tag}`, password, log: say });
    const t0 = performance.now();
    await w.register(o.setupConcurrency);
    await w.pair(o.setupConcurrency);
    say(`setup: ${o.users} users, ${o.users / 2} conversations in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const bench = new Bench();
    const agents = clients.map((c) => c.agent);
    await sleep(o.idle * 1000);
    const rssBefore = nodes.map((n) => rssBytes(n.child.pid!));
    await runPool(w.users, o.setupConcurrency, async (u) => {
      const s = new Session(u, agents, ports, bench);
      await s.open(password);
      sessions[u.i] = s;
      s.poll(); // at once: a session with nothing held for `inactivity` (60 s) is gone, as XEP-0124 says
    });
    say(`${sessions.length} BOSH sessions open, each holding one request`);
    // Let presence and conversation events settle, then read memory with every session idle.
    await sleep(2000 + o.idle * 1000);
    const rssIdle = nodes.map((n) => rssBytes(n.child.pid!));
    const held = sessions.filter((s) => s.outstanding === 1).length;
    const kibPerSessionNode = round((rssIdle.reduce((a, b) => a + b, 0) - rssBefore.reduce((a, b) => a + b, 0)) / 1024 / sessions.length, 1);
    const redis = new Redis(o.redisUrl);
    let redisBytes = 0;
    let sampled = 0;
    for (const s of sessions.slice(0, 50)) {
      const b = Number(await redis.memory('USAGE', `${prefix}kv:bosh:s:${s.sid}`));
      if (b > 0) {
        redisBytes += b;
        sampled++;
      }
    }
    redis.disconnect();
    const kibPerSessionRedis = sampled ? round(redisBytes / sampled / 1024, 1) : NaN;
    say(`memory: ${kibPerSessionNode} KiB node RSS + ${kibPerSessionRedis} KiB Redis per idle session (${held} held)`);

    // Closed-loop senders: a random pair and direction; the next message once the server processed this one.
    let counter = 0;
    const filler = 'x'.repeat(o.textBytes);
    const start = performance.now();
    const measureFrom = start + o.warmup * 1000;
    const until = measureFrom + o.seconds * 1000;
    const sender = async () => {
      while (performance.now() < until) {
        const from = Math.floor(Math.random() * o.users);
        const s = sessions[from]!;
        const to = w.users[from]!.partner;
        const id = `b${tag}-${++counter}`;
        const rec: Rec = { t0: performance.now(), recipient: to, measured: false };
        rec.measured = rec.t0 >= measureFrom && rec.t0 < until;
        bench.sent.set(id, rec);
        const ok = await s.send(`<message xmlns='jabber:client' to='${w.users[to]!.name}@${DOMAIN}' type='chat' id='${id}'><body>${id} ${filler}</body></message>`);
        if (!ok) {
          bench.sent.delete(id); // that session was busy; pick another
          await sleep(1);
          continue;
        }
        rec.processedAt = performance.now();
      }
    };
    say(`sending: ${o.senders} senders, ${o.warmup} s warm-up + ${o.seconds} s measured`);
    await Promise.all(Array.from({ length: o.senders }, sender));
    const drainUntil = performance.now() + o.drain * 1000;
    while (performance.now() < drainUntil && [...bench.sent.values()].some((r) => r.processedAt !== undefined && r.receivedAt === undefined)) await sleep(50);

    const all = [...bench.sent.values()].filter((r) => r.processedAt !== undefined);
    if (o.profile) {
      const hrOffsetUs = Number(process.hrtime.bigint() / 1000n) - performance.now() * 1000;
      const [fromUs, toUs] = [hrOffsetUs + measureFrom * 1000, hrOffsetUs + until * 1000].map(Math.round);
      say(`CPU profiles go to bench/out/prof-bosh-${tag}/ when the nodes stop; summarise the measured window with:`);
      say(`  node --import tsx bench/lib/profile.ts bench/out/prof-bosh-${tag}/FILE.cpuprofile ${fromUs} ${toUs}`);
    }
    const measured = all.filter((r) => r.measured);
    const delivered = measured.filter((r) => r.receivedAt !== undefined);
    const lost = all.filter((r) => r.receivedAt === undefined).length;
    const e2e = summarise(delivered.map((r) => r.receivedAt! - r.t0));
    const sessionsLost = sessions.filter((s) => s.lost).length;
    const requests = sessions.reduce((a, s) => a + s.requests, 0);
    const perSecond = round(delivered.length / o.seconds, 0);
    const lp = longPollReport(outDir, o.users);
    const share = lp ? perSecond / lp.deliveredPerSecond : NaN;
    const report = {
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, node: process.version },
      options: { ...o, databaseUrl: undefined, redisUrl: undefined },
      sent: all.length,
      delivered: delivered.length,
      deliveredPerSecond: perSecond,
      lost,
      duplicates: bench.duplicates,
      sessionsLost,
      requests,
      latencyMs: { endToEnd: e2e },
      memory: { kibPerSessionNode, kibPerSessionRedis, heldAtReading: held },
      problems: bench.problems,
      longPoll: lp ? { file: lp.file, deliveredPerSecond: lp.deliveredPerSecond, p50: lp.latencyMs.endToEnd.p50, p99: lp.latencyMs.endToEnd.p99, kibPerParked: lp.memory.kibPerParked, senders: lp.options.senders } : null,
      targets: TARGETS,
      verdict: {
        throughput: lp ? share >= TARGETS.throughputShareOfLongPoll : null,
        memory: kibPerSessionNode + kibPerSessionRedis < TARGETS.kibPerSession,
        sessionsLost: sessionsLost === TARGETS.sessionsLost,
      },
    };
    const outFile = path.join(outDir, `bosh-${report.date.replace(/[:.]/g, '-')}.json`);
    writeFileSync(outFile, JSON.stringify(report, null, 2));
    const lines = [
      '',
      `Parley BOSH load: ${o.users} users (requests alternate between the 2 nodes), ${o.senders} senders, ${o.seconds} s measured`,
      `                          BOSH                         long-poll${lp ? ` (${lp.file}, ${lp.options.senders} senders)` : ' (no report with this user count: run bench/load.ts)'}`,
      `  delivered messages/s    ${String(perSecond).padEnd(29)}${lp ? lp.deliveredPerSecond : '-'}${lp ? `   (BOSH = ${round(share * 100, 0)}% of long-poll)` : ''}`,
      `  latency p50 / p99       ${`${ms(e2e.p50)} / ${ms(e2e.p99)}`.padEnd(29)}${lp ? `${ms(lp.latencyMs.endToEnd.p50)} / ${ms(lp.latencyMs.endToEnd.p99)}` : '-'}`,
      `  memory per idle session ${`${kibPerSessionNode} KiB RSS + ${kibPerSessionRedis} KiB Redis`.padEnd(29)}${lp ? `${lp.memory.kibPerParked} KiB RSS per parked poll` : '-'}`,
      `  lost ${lost}, duplicates ${bench.duplicates}, sessions lost ${sessionsLost} of ${sessions.length}, BOSH requests ${requests}`,
      `  problems                ${Object.keys(bench.problems).length ? JSON.stringify(bench.problems) : 'none'}`,
      `  report                  ${path.relative(root, outFile)}`,
    ];
    console.log(lines.join('\n'));
    return 0;
  } finally {
    await cleanup();
  }
}

runMain(main, say);
