import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { projectPath } from '../../server/paths.js';
import type { ServerMode } from './nodes.js';

/** The flags of bench/load.ts (bench/README.md says what each does), checked; a bad one exits 2. */
export function loadOptions(settleQuietMs: number) {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '1000' },
      senders: { type: 'string', default: '50' },
      rate: { type: 'string', default: '0' },
      seconds: { type: 'string', default: '20' },
      warmup: { type: 'string', default: '2' },
      wait: { type: 'string', default: '20' },
      idle: { type: 'string', default: '3' },
      drain: { type: 'string', default: '10' },
      'text-bytes': { type: 'string', default: '64' },
      'setup-concurrency': { type: 'string', default: '16' },
      partners: { type: 'string', default: '0' },
      anyone: { type: 'boolean', default: false },
      'max-messages': { type: 'string', default: '2000000' },
      server: { type: 'string' },
      profile: { type: 'boolean', default: false },
      check: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      'node-flags': { type: 'string', default: '' },
      reuse: { type: 'string' },
      'database-url': { type: 'string', default: process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test' },
      'redis-url': { type: 'string', default: process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(readFileSync(path.join(projectPath(), 'bench/README.md'), 'utf8'));
    process.exit(0);
  }
  const num = (name: keyof typeof values, min: number, max: number): number => {
    const n = Number(values[name]);
    if (!Number.isFinite(n) || n < min || n > max) {
      console.error(`--${String(name)} must be a number in ${min}..${max}`);
      process.exit(2);
    }
    return n;
  };
  const runningFromDist = fileURLToPath(import.meta.url).includes(`${path.sep}dist${path.sep}`);
  const server = (values.server ?? (runningFromDist ? 'dist' : 'tsx')) as ServerMode;
  if (server !== 'tsx' && server !== 'dist') {
    console.error('--server must be tsx or dist');
    process.exit(2);
  }
  const o = {
    users: num('users', 2, 20000),
    senders: num('senders', 1, 1000),
    /** Messages per second offered in all (open loop); 0: closed loop. */
    rate: num('rate', 0, 100_000),
    seconds: num('seconds', 1, 300),
    warmup: num('warmup', 0, 60),
    wait: num('wait', 1, 25),
    idle: num('idle', 0, 15),
    drain: num('drain', 0, 60),
    textBytes: num('text-bytes', 0, 16000),
    setupConcurrency: num('setup-concurrency', 1, 500),
    /** 0: pairs (2k with 2k+1); N: each user has about N fixed partners, opened before the load. */
    partners: num('partners', 0, 200),
    /** Any sender to any recipient; a pair's first message opens its conversation. */
    anyone: values.anyone!,
    maxMessages: num('max-messages', 1, 100_000_000),
    server,
    profile: values.profile!,
    check: values.check!,
    keep: values.keep!,
    nodeFlags: values['node-flags']!.split(/\s+/).filter(Boolean),
    reuse: values.reuse,
    databaseUrl: values['database-url']!,
    redisUrl: values['redis-url']!,
  };
  if (o.anyone && o.partners > 0) {
    console.error('--anyone and --partners are two workloads: give one');
    process.exit(2);
  }
  if ((o.anyone || o.partners > 0) && (values.reuse || values.keep)) {
    console.error('--keep and --reuse keep the pairs workload only');
    process.exit(2);
  }
  if (o.users % 2 !== 0) {
    console.error('--users must be even (users are paired across the two nodes)');
    process.exit(2);
  }
  // The parked-memory reading holds every poll for the settle time + idle; they must not time out meanwhile.
  if (o.wait <= o.idle + settleQuietMs / 1000 + 1) {
    console.error(`--wait (${o.wait} s) must exceed --idle (${o.idle} s) + 2 s, or polls return during the memory reading`);
    process.exit(2);
  }
  return o;
}

/** The options of a load run. */
export type LoadOptions = ReturnType<typeof loadOptions>;
