import { expect } from 'chai';
import { Cluster } from 'ioredis';
import { pino } from 'pino';
import supertest from 'supertest';
import { RedisBus } from '../../server/bus/redis.js';
import { busContract } from '../bus/contract.js';
import { multinodeSuite } from '../e2e/multinode.js';
import { PASSWORD, as, pollEvents, register } from '../support/client.js';
import { dropPrefix, requireServices, unique } from '../support/services.js';
import { startStack } from '../support/stack.js';
import { BoshClient } from '../transports/bosh/helpers.js';
import { requirePrograms, startRedisCluster } from './servers.js';

const log = pino({ level: 'silent' });

describe('on a Redis Cluster of three masters (REDIS_CLUSTER=on)', function () {
  this.timeout(120_000);
  let cluster: Awaited<ReturnType<typeof startRedisCluster>> | undefined;
  let admin: Cluster | undefined;
  const prefix = `parley-cluster-${unique('')}:`;
  const env: Record<string, string> = {};

  before(async function () {
    requirePrograms(this, ['redis-server', 'redis-cli']);
    await requireServices(this); // the stacks use the test PostgreSQL
    cluster = await startRedisCluster();
    admin = new Cluster([{ host: '127.0.0.1', port: cluster.ports[0]! }], { lazyConnect: true });
    await admin.connect();
    Object.assign(env, { REDIS_URL: cluster.url, REDIS_CLUSTER: 'on' });
  });
  after(async () => {
    if (cluster) await dropPrefix(prefix, cluster.url, undefined, true);
    admin?.disconnect();
    await cluster?.stop();
  });

  let fixtures = 0;
  busContract('redis cluster', async () => {
    const mine = `${prefix}${++fixtures}:`;
    return {
      node: () => RedisBus.connect({ url: cluster!.url, prefix: mine, log, cluster: true }),
      stranger: () => RedisBus.connect({ url: cluster!.url, prefix: `${mine}stranger:`, log, cluster: true }),
      // Sharded channels: each is counted by the master that owns its slot
      subscriptions: async (channel) => {
        const counts = await Promise.all(
          admin!.nodes('master').map(async (n) => Number(((await n.call('PUBSUB', 'SHARDNUMSUB', mine + channel)) as [string, number])[1])),
        );
        return counts.reduce((a, b) => a + b, 0);
      },
      end: async () => {},
    };
  });

  it("spreads presence over the masters (buckets), and /readyz answers from a keyed command", async () => {
    const mine = `${prefix}spread:`;
    const bus = await RedisBus.connect({ url: cluster!.url, prefix: mine, log, cluster: true });
    try {
      for (let i = 0; i < 64; i++) await bus.heartbeat(`user-${i}`, 'n', 1000 + i);
      const holding = await Promise.all(admin!.nodes('master').map(async (n) => (await n.scan('0', 'MATCH', `${mine}presence:*`, 'COUNT', 1000))[1].length));
      expect(holding.filter((k) => k > 0).length, `presence keys per master: ${holding}`).to.equal(3);
      expect((await bus.lastHeartbeats(['user-0', 'user-63', 'nobody'])).size).to.equal(2);
      expect(await bus.ping()).to.equal(true);
    } finally {
      await bus.close();
    }
  });

  it('a node not told it is a cluster (REDIS_CLUSTER unset) refuses to start, saying so, instead of answering MOVED as 500s', async () => {
    const failure = await RedisBus.connect({ url: cluster!.url, prefix, log }).then(
      async (bus) => {
        await bus.close();
        return 'connected';
      },
      (err: Error) => err.message,
    );
    expect(failure).to.equal('REDIS_URL is a node of a Redis Cluster: set REDIS_CLUSTER=on');
  });

  it('after every shard dropped its subscriber connection, channels are live again and onResume says so', async () => {
    const bus = await RedisBus.connect({ url: cluster!.url, prefix: `${prefix}resume:`, log, cluster: true });
    try {
      let resumed = 0;
      bus.onResume(() => resumed++);
      const got: string[] = [];
      const channels = Array.from({ length: 6 }, (_, i) => `ch${i}`); // over several shards
      for (const ch of channels) await bus.subscribe(ch, (p) => got.push(p));
      await Promise.all(admin!.nodes('master').map((n) => n.call('CLIENT', 'KILL', 'TYPE', 'pubsub')));
      const until = Date.now() + 10_000;
      while (resumed === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(resumed, 'onResume after the gap').to.be.above(0);
      for (const ch of channels) await bus.publish(ch, ch);
      for (let i = 0; i < 40 && got.length < channels.length; i++) await new Promise((r) => setTimeout(r, 50));
      expect([...got].sort()).to.deep.equal(channels);
    } finally {
      await bus.close();
    }
  });

  it('BOSH and long-poll across two nodes: a BOSH session whose requests alternate nodes chats with a long-poll user', async () => {
    const stack = await startStack({ backend: 'real', nodes: 2, env });
    try {
      const nodes = stack.nodes.map((n) => n.url);
      await supertest(nodes[0]!).get('/readyz').expect(200);
      const alice = await register(nodes[0]!, 'alice');
      const bob = await register(nodes[1]!, 'bob');
      await as(nodes[0]!, alice).post('/api/conversations').send({ with: bob.name }).expect(201);
      await pollEvents(nodes[1]!, bob);
      const c = new BoshClient(nodes, 'localhost'); // round-robin over the nodes: session state lives on the cluster
      await c.create({ wait: 5 });
      await c.login(alice.name, PASSWORD);
      await c.send(`<presence xmlns='jabber:client'/>`); // available: messages may now come to this session
      await c.send(`<message xmlns='jabber:client' to='${bob.name}@localhost' type='chat' id='c-1'><body>hi bob</body></message>`);
      const got = await pollEvents(nodes[0]!, bob, 5);
      const m = got.find((e) => e.type === 'message');
      expect(m?.message).to.include({ text: 'hi bob', from: alice.name });
      await as(nodes[1]!, bob).post(`/api/conversations/${m!.message.conversation}/messages`).send({ text: 'hi alice' }).expect(201);
      let text = '';
      for (let i = 0; i < 5 && !text.includes('hi alice'); i++) text += (await c.send()).text;
      expect(text, text).to.contain('<body>hi alice</body>');
    } finally {
      await stack.close();
    }
  });

  multinodeSuite('the multinode suite on the Redis Cluster', env);
});
