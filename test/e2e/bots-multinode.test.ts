import { expect } from 'chai';
import supertest from 'supertest';
import { BOT_REVOKE_CHANNEL } from '../../server/core/bots.js';
import { as, pollEvents, register, type TestUser } from '../support/client.js';
import { flushPresence, useStack } from '../support/stack.js';

/** Bots across nodes behind a load balancer that is not sticky: revocation is everywhere at once. */
describe('bots and webhooks on several nodes', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'real', nodes: 2 });
  const botUser = (token: string): TestUser => ({ name: 'bot', token });

  async function pair() {
    const [A, B] = [suite.url(0), suite.url(1)];
    const alice = await register(A, 'alice');
    const bob = await register(B, 'bob');
    const conv = (await as(A, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation as { id: string };
    await as(B, bob).post(`/api/conversations/${conv.id}/accept`).expect(204);
    return { A, B, alice, bob, conv };
  }

  it('a bot token revoked on node A is refused on node B at once, though B had it cached', async () => {
    const { A, B, alice, conv } = await pair();
    const made = (await as(A, alice).post('/api/bots').send({ name: 'ci', conversation: conv.id, scope: 'read,send' }).expect(201)).body;
    const bot = botUser(made.token);
    await as(B, bot).post(`/api/conversations/${conv.id}/messages`).send({ text: 'cached on B' }).expect(201);
    await as(B, bot).get(`/api/conversations/${conv.id}/messages`).expect(200);
    // Node B hears of the revocation on the bus; its own handler ran before this one (subscribed first)
    const busB = suite.stack.nodes[1]!.deps.bus;
    let heard!: () => void;
    const announced = new Promise<void>((resolve) => (heard = resolve));
    const onRevoke = () => heard();
    await busB.subscribe(BOT_REVOKE_CHANNEL, onRevoke);
    try {
      await as(A, alice).delete(`/api/bots/${made.bot.id}`).expect(204);
      await announced;
    } finally {
      await busB.unsubscribe(BOT_REVOKE_CHANNEL, onRevoke);
    }
    await as(B, bot).post(`/api/conversations/${conv.id}/messages`).send({ text: 'after revoke' }).expect(401);
    await as(B, bot).get('/api/events?wait=0').expect(401);
    await as(A, bot).get(`/api/conversations/${conv.id}/messages`).expect(401);
    const texts = (await as(A, alice).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages.map((m: any) => m.text);
    expect(texts).to.deep.equal(['cached on B']);
  });

  it("bob, parked on node A, gets a bot's and a webhook's messages sent through node B, each with its name", async () => {
    const { A, B, alice, bob, conv } = await pair();
    const made = (await as(A, alice).post('/api/bots').send({ name: 'builds', conversation: conv.id, scope: 'send' }).expect(201)).body;
    const hook = (await as(A, alice).post(`/api/conversations/${conv.id}/webhooks`).send({ name: 'alerts' }).expect(201)).body.webhook;
    await flushPresence(suite.stack); // presence news of the pair lands now, not while bob is parked
    await pollEvents(A, bob);
    const seen: Array<[string, string]> = [];
    const lot = suite.stack.nodes[0]!.deps.lot;
    for (const post of [
      () => as(B, botUser(made.token)).post(`/api/conversations/${conv.id}/messages`).send({ text: 'build 7 green' }).expect(201),
      () => supertest(B).post(hook.url).type('form').send('text=disk+full').expect(201),
    ]) {
      const parked = pollEvents(A, bob, 10);
      while (lot.parked === 0) await new Promise((r) => setTimeout(r, 10)); // parked
      await post();
      for (const e of await parked) if (e.type === 'message') seen.push([e.message.text, e.message.bot]);
    }
    expect(seen).to.deep.equal([
      ['build 7 green', 'builds'],
      ['disk full', 'alerts'],
    ]);
    const history = (await as(B, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
    expect(history.map((m: any) => [m.from, m.bot])).to.deep.equal([
      [alice.name, 'builds'],
      [alice.name, 'alerts'],
    ]);
  });
});
