import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { RedisBus } from '../../server/bus/redis.js';
import { busContract } from './contract.js';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const log = pino({ level: 'silent' });
/** Every key and channel of this run starts with this; the stranger's too, so one SCAN cleans all. */
const prefix = `parley-test-${randomBytes(6).toString('hex')}:`;

describe('RedisBus', function () {
  let admin: Redis | undefined;

  before(async function () {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      await probe.connect();
      admin = probe;
    } catch (err) {
      probe.disconnect();
      if (process.env.CI) throw new Error(`Redis is required when CI is set (${url}): ${String(err)}`);
      console.warn(`\n  !!! SKIPPING RedisBus tests: no Redis at ${url} (${String(err)}). Set REDIS_URL or start Redis.\n`);
      this.skip();
    }
  });

  after(async function () {
    if (!admin) return;
    // Remove every key this run left behind (SCAN, never KEYS: Redis may be shared).
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await admin.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await admin.quit();
  });

  let fixtures = 0;
  busContract('redis', async () => {
    // A prefix per test under the run's prefix: leftovers of one test cannot leak into the next.
    const mine = `${prefix}${++fixtures}:`;
    return {
      node: () => RedisBus.connect({ url, prefix: mine, log }),
      stranger: () => RedisBus.connect({ url, prefix: `${mine}stranger:`, log }),
      subscriptions: async (channel) => {
        const reply = (await admin!.pubsub('NUMSUB', mine + channel)) as [string, number];
        return Number(reply[1]);
      },
      end: async () => {},
    };
  });

  describe('RedisBus specifics', function () {
    it('keeps its keys and channels under the prefix', async function () {
      const bus = await RedisBus.connect({ url, prefix, log });
      try {
        await bus.set('sid-1', 'v', 60_000);
        await bus.heartbeat('alice-specific', 'n1', 1000);
        expect(await admin!.get(`${prefix}kv:sid-1`)).to.equal('v');
        expect(await admin!.hget(`${prefix}presence:node`, 'alice-specific')).to.equal('n1');
        expect(await admin!.zscore(`${prefix}presence:last`, 'alice-specific')).to.equal('1000');
        expect(Number(await admin!.pttl(`${prefix}kv:sid-1`))).to.be.within(1, 60_000);
        let got = '';
        await bus.subscribe('user:7', (p) => (got = p));
        await admin!.publish(`${prefix}user:7`, 'raw');
        while (!got) await new Promise((r) => setTimeout(r, 5));
        expect(got).to.equal('raw');
        await bus.sweepExpired(2000, 10);
        expect(await admin!.hget(`${prefix}presence:node`, 'alice-specific')).to.equal(null, 'the sweep also drops the node entry');
      } finally {
        await bus.close();
      }
    });

    it('re-subscribes after its subscriber connection dropped, and says so through onResume', async function () {
      const bus = await RedisBus.connect({ url, prefix, log });
      try {
        const sub = (bus as unknown as { sub: Redis }).sub;
        const got: string[] = [];
        await bus.subscribe('user:reconnect', (p) => got.push(p));
        let resumes = 0;
        const resumed = new Promise<void>((resolve) =>
          bus.onResume(() => {
            resumes++;
            resolve();
          }),
        );
        const removed = bus.onResume(() => expect.fail('a removed listener was called'));
        removed();
        sub.stream.destroy();
        await resumed;
        // No polling: onResume promises the channels are live again.
        const [, n] = (await admin!.pubsub('NUMSUB', `${prefix}user:reconnect`)) as [string, number];
        expect(Number(n)).to.equal(1);
        await bus.publish('user:reconnect', 'after the drop');
        for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
        expect(got).to.deep.equal(['after the drop']);
        expect(resumes).to.equal(1);
      } finally {
        await bus.close();
      }
    });

    it('publish and publishMany resolve (never reject) when Redis is gone', async function () {
      const bus = await RedisBus.connect({ url, prefix, log });
      (bus as unknown as { cmd: Redis }).cmd.disconnect();
      await bus.publish('user:1', 'lost');
      await bus.publishMany([['user:1', 'lost'], ['user:2', 'lost']]);
      expect(await bus.ping()).to.equal(false);
      await bus.close();
    });

    it('connect to a Redis that is not there rejects and leaves nothing running', async function () {
      let err: unknown;
      try {
        await RedisBus.connect({ url: 'redis://127.0.0.1:1', prefix, log });
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(Error);
    });
  });
});
