/**
 * What opening a conversation costs, beside what a send costs, measured in the same run: two nodes
 * on PostgreSQL + Redis, U users, each opening direct conversations with P partners (every pair
 * opened by both of its users at once, from both nodes) and G groups of K members, C requests in
 * flight; then one message through each direct conversation at the same concurrency. Prints, for
 * each phase, requests/s, p50/p99, PostgreSQL and node CPU per request, errors, and the deadlocks
 * PostgreSQL reported to the nodes (their parley_db_deadlocks_total).
 *
 *   npm run build && node dist/bench/open.js --users 200 --partners 10 --groups 100
 *   node --import tsx bench/open.ts --users 100
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { projectPath } from '../server/paths.js';
import { NodeClient } from './lib/client.js';
import { runPool } from './lib/pool.js';
import { cpuMs, cpuMsByName, freePort, startNode, stopNode, waitReady, type RunningNode } from './lib/nodes.js';
import { checkServices, deleteKeys, dropSchema } from './lib/services.js';
import { round, summarise } from './lib/stats.js';

const { values } = parseArgs({
  options: {
    users: { type: 'string', default: '200' },
    partners: { type: 'string', default: '10' },
    groups: { type: 'string', default: '100' },
    'group-size': { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '50' },
    'max-seconds': { type: 'string', default: '300' },
    'database-url': { type: 'string', default: process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test' },
    'redis-url': { type: 'string', default: process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379' },
  },
});
const num = (v: string | undefined, min: number, max: number, name: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    console.error(`--${name} must be an integer in ${min}..${max}`);
    process.exit(2);
  }
  return n;
};
const USERS = num(values.users, 4, 5000, 'users');
const PARTNERS = num(values.partners, 2, Math.min(100, USERS - 1), 'partners') & ~1; // even: k = 1..P/2 each way
const GROUPS = num(values.groups, 0, 10_000, 'groups');
const GROUP_SIZE = num(values['group-size'], 3, 100, 'group-size');
const CONCURRENCY = num(values.concurrency, 1, 1000, 'concurrency');
const DEADLINE = Date.now() + num(values['max-seconds'], 10, 3600, 'max-seconds') * 1000;
const say = (m: string) => process.stderr.write(`[open ${new Date().toISOString().slice(11, 23)}] ${m}\n`);

type Result = { ok: boolean; ms: number; status: number };

/** Run tasks with at most `limit` in flight (runPool), starting no new one past the deadline. */
async function run(tasks: Array<() => Promise<Result>>, limit: number): Promise<Result[]> {
  const out: Result[] = [];
  await runPool(tasks, limit, async (task) => {
    if (Date.now() < DEADLINE) out.push(await task());
  });
  return out;
}

async function main(): Promise<void> {
  await checkServices(values['database-url']!, values['redis-url']!);
  const root = projectPath();
  const mode = fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`) ? 'dist' : 'tsx';
  const schema = `bench_open_${randomBytes(4).toString('hex')}`;
  const prefix = `parley-bench-open-${randomBytes(4).toString('hex')}:`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-open-'));
  const env = {
    DATABASE_URL: values['database-url']!,
    DATABASE_SCHEMA: schema,
    REDIS_URL: values['redis-url']!,
    REDIS_PREFIX: prefix,
    MASTER_KEY: randomBytes(32).toString('hex'),
    RATE_LIMIT: 'off',
    LOG_LEVEL: 'warn',
    DATA_DIR: dir,
  };
  const nodes: RunningNode[] = [];
  try {
    for (const id of ['a', 'b']) {
      const node = startNode({ id, root, mode, env: { ...env, NODE_ID: id }, logFile: path.join(dir, `${id}.log`) }, await freePort());
      nodes.push(node);
      await waitReady(node, 60_000);
    }
    const clients = nodes.map((n) => new NodeClient('127.0.0.1', n.port, CONCURRENCY + 8));
    const call = async (i: number, p: string, token: string | undefined, body: unknown): Promise<Result> => {
      const t = performance.now();
      try {
        const r = await clients[i % 2]!.request(p, { token, body, timeoutMs: 30_000 });
        return { ok: r.status < 300, ms: performance.now() - t, status: r.status };
      } catch {
        return { ok: false, ms: performance.now() - t, status: 0 };
      }
    };

    say(`registering ${USERS} users`);
    const names = Array.from({ length: USERS }, (_, i) => `o${i}`);
    const tokens: string[] = [];
    await run(
      names.map((name, i) => async () => {
        const r = await clients[i % 2]!.request('/api/register', { body: { name, password: 'bench password' }, timeoutMs: 60_000 });
        if (r.status !== 201) throw new Error(`register ${name}: ${r.status}`);
        tokens[i] = r.body.token as string;
        return { ok: true, ms: 0, status: 201 };
      }),
      8,
    );

    // Phase 1: every pair (i, i+k) opened by both of its users, and the groups, shuffled together
    const opens: Array<{ from: number; body: unknown; pair?: number }> = [];
    const pairs: Array<[number, number]> = [];
    for (let i = 0; i < USERS; i++) {
      for (let k = 1; k <= PARTNERS / 2; k++) {
        const j = (i + k) % USERS;
        pairs.push([i, j]);
        opens.push({ from: i, body: { with: names[j] }, pair: pairs.length - 1 }, { from: j, body: { with: names[i] }, pair: pairs.length - 1 });
      }
    }
    for (let g = 0; g < GROUPS; g++) {
      const first = (g * 7) % USERS;
      const members = Array.from({ length: GROUP_SIZE - 1 }, (_, k) => names[(first + 1 + k * 3) % USERS]);
      opens.push({ from: first, body: { title: `group ${g}`, members } });
    }
    for (let i = opens.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [opens[i], opens[j]] = [opens[j]!, opens[i]!];
    }
    const convOfPair: string[] = [];
    const measure = async (label: string, tasks: Array<() => Promise<Result>>) => {
      const pg0 = cpuMsByName(['postgres'])['postgres']!;
      const node0 = nodes.reduce((s, n) => s + cpuMs(n.child.pid!), 0);
      const t0 = performance.now();
      const results = await run(tasks, CONCURRENCY);
      const wall = performance.now() - t0;
      const pg = cpuMsByName(['postgres'])['postgres']! - pg0;
      const node = nodes.reduce((s, n) => s + cpuMs(n.child.pid!), 0) - node0;
      const lat = summarise(results.map((r) => r.ms));
      const errors = results.filter((r) => !r.ok);
      return {
        label,
        requests: results.length,
        perSecond: Math.round((results.length / wall) * 1000),
        p50: round(lat.p50, 1),
        p99: round(lat.p99, 1),
        pgMsPer: (pg / results.length).toFixed(2),
        nodeMsPer: (node / results.length).toFixed(2),
        errors: errors.length,
        statuses: [...new Set(errors.map((e) => e.status))].join(' '),
      };
    };
    say(`opening ${pairs.length} direct conversations (each from both sides: ${pairs.length * 2} requests) and ${GROUPS} groups, ${CONCURRENCY} at a time`);
    const open = await measure(
      'open',
      opens.map((o, n) => async () => {
        const t = performance.now();
        const r = await clients[n % 2]!.request('/api/conversations', { token: tokens[o.from], body: o.body, timeoutMs: 30_000 }).catch(() => null);
        if (r && r.status < 300 && o.pair !== undefined) convOfPair[o.pair] = r.body.conversation.id as string;
        return { ok: !!r && r.status < 300, ms: performance.now() - t, status: r?.status ?? 0 };
      }),
    );
    say(`sending one message through each of the ${pairs.length} direct conversations`);
    const send = await measure(
      'send',
      pairs.map(([i], n) => () =>
        call(n + 1, `/api/conversations/${encodeURIComponent(convOfPair[n] ?? 'missing')}/messages`, tokens[i], { text: `hello ${n}` }),
      ),
    );
    const deadlocks: number[] = [];
    for (const c of clients) {
      const r = await new Promise<string>((resolve) => {
        http
          .get({ host: c.host, port: c.port, path: '/metrics', agent: c.agent }, (res) => {
            let text = '';
            res.on('data', (d: Buffer) => (text += d));
            res.on('end', () => resolve(text));
          })
          .on('error', () => resolve(''));
      });
      const m = /^parley_db_deadlocks_total (\d+)/m.exec(r);
      deadlocks.push(m ? Number(m[1]) : NaN);
    }
    console.log(
      `\nParley open vs send: ${USERS} users over 2 nodes, ${PARTNERS} partners each (every pair opened from both sides at once), ${GROUPS} groups of ${GROUP_SIZE}, ${CONCURRENCY} in flight, server ${mode}`,
    );
    console.log('| phase | requests | req/s | p50 ms | p99 ms | PostgreSQL CPU ms/req | nodes CPU ms/req | errors |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of [open, send]) {
      console.log(`| ${r.label} | ${r.requests} | ${r.perSecond} | ${r.p50} | ${r.p99} | ${r.pgMsPer} | ${r.nodeMsPer} | ${r.errors}${r.statuses ? ` (${r.statuses})` : ''} |`);
    }
    console.log(`deadlocks reported to the nodes: ${deadlocks.join(' + ')}`);
  } finally {
    for (const n of nodes) await stopNode(n, 10_000);
    await dropSchema(values['database-url']!, schema).catch(() => undefined);
    await deleteKeys(values['redis-url']!, prefix).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
