import { expect } from 'chai';
import { pino } from 'pino';
import { LocalBus, LocalHub } from '../../server/bus/local.js';
import { busContract } from './contract.js';

const log = pino({ level: 'silent' });

busContract('local (in-process)', async () => {
  // Nodes share one hub, as nodes share one Redis; a stranger gets a hub of its own.
  const hub = new LocalHub();
  return {
    node: async () => new LocalBus({ log, hub }),
    stranger: async () => new LocalBus({ log }),
    subscriptions: async (channel) => (hub.channels.get(channel)?.length ? 1 : 0),
    end: async () => {},
  };
});

describe('LocalBus specifics', function () {
  it('expires keys on the injected clock, without waiting', async function () {
    let now = 1_000_000;
    const bus = new LocalBus({ log, now: () => now });
    await bus.set('sid', 'v', 30_000);
    expect(await bus.incr('hits', 1000)).to.equal(1);
    now += 29_999;
    expect(await bus.get('sid')).to.equal('v');
    expect(await bus.incr('hits', 1000)).to.equal(1, 'the counter window of 1 s has passed');
    now += 1;
    expect(await bus.get('sid')).to.equal(null);
    await bus.close();
  });

  it('does not keep expired keys nobody reads again (rate-limit counters) forever', async function () {
    let now = 0;
    const hub = new LocalHub(() => now);
    const bus = new LocalBus({ log, hub });
    for (let i = 0; i < 5000; i++) await bus.incr(`ip-${i}`, 1000);
    now += 2000;
    for (let i = 0; i < 5000; i++) await bus.incr(`ip2-${i}`, 1000);
    // Without purging there would be 10,000 entries; growth-triggered purges drop the expired ones.
    expect(hub.kv.size).to.be.below(6000);
    await bus.close();
  });
});
