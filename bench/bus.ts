/**
 * Publish → handler latency over Redis for the channel-per-user scheme: one node subscribes to
 * many user channels on its single subscriber connection, another node publishes wake-ups.
 * Prints subscribe time, sequential latency (p50/p99) and pipelined throughput per channel count.
 *
 *   npx tsx bench/bus.ts [channels=1000,10000,50000] [REDIS_URL]
 *
 * Bounded: at most 2,000 sequential and 20,000 pipelined publishes per channel count, and each
 * phase stops after 20 s. Uses its own key prefix and leaves nothing behind (pub/sub only).
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { RedisBus } from '../server/bus/redis.js';

const counts = (process.argv[2] ?? '10,1000,10000,50000').split(',').map(Number);
const url = process.argv[3] ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const log = pino({ level: 'warn' });
const SEQUENTIAL = 2000;
const PIPELINED = 20_000;
const BATCH = 100;
/** A phase never runs longer than this, whatever the machine. */
const PHASE_LIMIT_MS = 20_000;

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

async function run(channels: number): Promise<void> {
  const prefix = `parley-bench-${randomBytes(4).toString('hex')}:`;
  const receiver = await RedisBus.connect({ url, prefix, log });
  const sender = await RedisBus.connect({ url, prefix, log });
  try {
    let waiting: ((at: number) => void) | undefined;
    let received = 0;
    let allIn: (() => void) | undefined;
    /** Set once every pipelined batch is sent; until then the count is not final. */
    let expected = Infinity;
    const handler = (payload: string): void => {
      received++;
      if (waiting) waiting(performance.now() - Number(payload));
      if (allIn && received >= expected) allIn();
    };

    const t0 = performance.now();
    await Promise.all(Array.from({ length: channels }, (_, i) => receiver.subscribe(`user:${i}`, handler)));
    const subscribeMs = performance.now() - t0;

    // Sequential: one wake-up in flight at a time, to a random user: the latency a poller sees.
    const lat: number[] = [];
    const seqStart = performance.now();
    for (let i = 0; i < SEQUENTIAL && performance.now() - seqStart < PHASE_LIMIT_MS; i++) {
      const got = new Promise<number>((resolve) => (waiting = resolve));
      await sender.publish(`user:${Math.floor(Math.random() * channels)}`, String(performance.now()));
      lat.push(await got);
    }
    waiting = undefined;
    lat.sort((a, b) => a - b);

    // Pipelined: batches of publishMany, as group commit would send them.
    received = 0;
    let sentTotal = 0;
    const pipeStart = performance.now();
    const done = new Promise<void>((resolve) => (allIn = resolve));
    for (let sent = 0; sent < PIPELINED && performance.now() - pipeStart < PHASE_LIMIT_MS; sent += BATCH) {
      const items: Array<[string, string]> = [];
      for (let j = 0; j < BATCH; j++) items.push([`user:${Math.floor(Math.random() * channels)}`, String(performance.now())]);
      sentTotal += BATCH;
      await sender.publishMany(items);
    }
    expected = sentTotal;
    if (received >= expected) allIn?.();
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
    await Promise.race([done, timeout]);
    const pipeMs = performance.now() - pipeStart;
    allIn = undefined;

    console.log(
      [
        `channels=${channels}`.padEnd(16),
        `subscribe=${subscribeMs.toFixed(0)}ms`.padEnd(18),
        `seq n=${lat.length} p50=${pct(lat, 50).toFixed(3)}ms p99=${pct(lat, 99).toFixed(3)}ms max=${lat[lat.length - 1]!.toFixed(2)}ms`.padEnd(58),
        `pipelined ${received}/${sentTotal} in ${pipeMs.toFixed(0)}ms = ${Math.round((received / pipeMs) * 1000)}/s`,
      ].join(' '),
    );
  } finally {
    await Promise.all([receiver.close(), sender.close()]);
  }
}

console.log(`bus bench: Redis ${url}, node ${process.version}`);
for (const n of counts) await run(n);
