/**
 * Memory per idle BOSH session beside memory per parked long-poll, read as JS heap after a full
 * garbage collection in one Parley node (a child process, PostgreSQL + Redis), so the figure is
 * the server's and not the collector's slack or the load generator's.
 *
 *   node --import tsx bench/bosh-memory.ts --users 200
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './lib/nodes.js';
import { deleteKeys, dropSchema } from './lib/services.js';
import { runPool } from './lib/pool.js';
import { sleep } from './lib/sleep.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '200' }, 'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/test' }, 'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' } } });
const N = Number(values.users);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (m: string) => void process.stderr.write(`[bosh-memory] ${m}\n`);
const BOSH = 'http://jabber.org/protocol/httpbind';

const agent = new http.Agent({ keepAlive: true, maxSockets: N * 2 + 16 });
function request(port: number, method: string, p: string, body?: string, headers: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(body);
    const req = http.request({ host: '127.0.0.1', port, method, path: p, agent, headers: { ...headers, ...(payload ? { 'content-length': String(payload.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function main() {
  const tag = randomBytes(4).toString('hex');
  const schema = `bench_${tag}`;
  const prefix = `bench-${tag}:`;
  const port = await freePort();
  const child = fork(path.join(root, 'bench/lib/gc-node.ts'), [], {
    cwd: root,
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, PORT: String(port), DATABASE_URL: values['database-url'], DATABASE_SCHEMA: schema, REDIS_URL: values['redis-url'], REDIS_PREFIX: prefix, MASTER_KEY: randomBytes(32).toString('hex'), RATE_LIMIT: 'off', LOG_LEVEL: 'warn', NODE_ID: 'm' },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  let lastRss = 0; // RSS after the last heap() reading's full GC
  const heap = () => new Promise<number>((resolve) => {
    child.once('message', (m: any) => {
      lastRss = m.rss;
      resolve(m.heapUsed + m.external);
    });
    child.send('heap');
  });
  try {
    for (let i = 0; ; i++) {
      try {
        if ((await request(port, 'GET', '/readyz')).includes('"ok":true')) break;
      } catch { /* not yet */ }
      if (i > 600) throw new Error('node not ready');
      await sleep(100);
    }
    const password = `pw-${tag}-long`;
    const users: Array<{ name: string; token: string }> = [];
    await runPool(Array.from({ length: N }, (_, i) => i), 8, async (i) => {
      const name = `m${tag}${i}`;
      const res = JSON.parse(await request(port, 'POST', '/api/register', JSON.stringify({ name, password }), { 'content-type': 'application/json' }));
      users[i] = { name, token: res.token };
    });
    // Everyone polls once without waiting, so their streams' start-up events are behind them.
    const cursors = await Promise.all(users.map(async (u) => JSON.parse(await request(port, 'GET', '/api/events?wait=0', undefined, { authorization: `Bearer ${u.token}` })).cursor as string));
    say(`${N} users registered`);
    await sleep(1000);
    const base1 = await heap();
    const rss1 = lastRss;
    // Long-poll: every user parks one poll.
    const polls = users.map((u, i) => request(port, 'GET', `/api/events?wait=20&since=${cursors[i]}`, undefined, { authorization: `Bearer ${u.token}` }));
    await sleep(2000);
    const parked = await heap();
    const perPoll = (parked - base1) / N;
    // RSS after a full GC at both ends: the process's memory without collector slack, native
    // buffers (sockets, HTTP parsers) included
    const rssPerPoll = (lastRss - rss1) / N;
    say(`long-poll: ${(perPoll / 1024).toFixed(1)} KiB heap, ${(rssPerPoll / 1024).toFixed(1)} KiB RSS per parked poll`);
    await Promise.all(polls);
    await sleep(1500);
    // BOSH: every user logs in and holds one request.
    const sessions: Array<{ sid: string; rid: number }> = [];
    await runPool(users.map((u, i) => ({ u, i })), 8, async ({ u, i }) => {
      let rid = 1000;
      const post = (inner: string, attrs: string) => request(port, 'POST', '/http-bind', inner ? `<body xmlns='${BOSH}' rid='${rid++}'${attrs}>${inner}</body>` : `<body xmlns='${BOSH}' rid='${rid++}'${attrs}/>`);
      const created = await post('', ` to='localhost' wait='60' hold='1' ver='1.6'`);
      const sid = /sid='([^']+)'/.exec(created)![1]!;
      const s = ` sid='${sid}'`;
      await post(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${u.name}\0${password}`).toString('base64')}</auth>`, s);
      await post('', `${s} xmlns:xmpp='urn:xmpp:xbosh' xmpp:restart='true'`);
      await post(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`, s);
      await post(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`, s);
      sessions[i] = { sid, rid };
    });
    await sleep(1500);
    const base2 = await heap();
    const held = sessions.map((x) => request(port, 'POST', '/http-bind', `<body xmlns='${BOSH}' rid='${x.rid}' sid='${x.sid}'/>`));
    await sleep(2000);
    const holding = await heap();
    const perHeld = (holding - base2) / N;
    const perSessionState = (base2 - base1) / N; // sessions' node-side caches, no request held
    const redis = new Redis(values['redis-url']!);
    let redisBytes = 0;
    for (const x of sessions.slice(0, 50)) redisBytes += Number(await redis.memory('USAGE', `${prefix}kv:bosh:s:${x.sid}`));
    redis.disconnect();
    const perRedis = redisBytes / Math.min(50, sessions.length);
    console.log(`\nMemory per idle session, ${N} users, JS heap after full GC (one node):`);
    console.log(`  long-poll  ${(perPoll / 1024).toFixed(1)} KiB per parked poll (RSS after the same full GC: ${(rssPerPoll / 1024).toFixed(1)} KiB)`);
    console.log(`  BOSH       ${(perHeld / 1024).toFixed(1)} KiB per held request + ${(Math.max(0, perSessionState) / 1024).toFixed(1)} KiB node-side per session + ${(perRedis / 1024).toFixed(1)} KiB in Redis = ${((perHeld + Math.max(0, perSessionState) + perRedis) / 1024).toFixed(1)} KiB`);
    child.kill('SIGTERM');
    await Promise.allSettled(held);
  } finally {
    if (child.exitCode === null) child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    agent.destroy();
    await dropSchema(values['database-url']!, schema).catch(() => undefined);
    await deleteKeys(values['redis-url']!, prefix).catch(() => undefined);
  }
}
main().then(() => process.exit(0), (e) => { say(String(e?.stack ?? e)); process.exit(1); });
