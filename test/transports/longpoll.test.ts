import { expect } from 'chai';
import supertest from 'supertest';
import { PASSWORD, as, pollEvents, register, type TestUser } from '../support/client.js';
import { flushPresence, useStack } from '../support/stack.js';

describe('long-poll: own messages and other devices', function () {
  this.timeout(30_000);
  const suite = useStack({ backend: 'real', nodes: 2 });
  let A: string;
  let B: string;
  before(() => {
    [A, B] = [suite.url(0), suite.url(1)];
  });

  async function setup() {
    const alice = await register(A, 'alice');
    const bob = await register(B, 'bob');
    const conv = (await as(A, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    await pollEvents(A, alice);
    await pollEvents(B, bob);
    await flushPresence(suite.stack); // both are online: their presence news lands now
    await pollEvents(A, alice);
    await pollEvents(B, bob);
    return { alice, bob, conv };
  }

  it("alice's other device sees her message at once; the sending device gets it with bob's delivered receipt, in one answer", async () => {
    const { alice, bob, conv } = await setup();
    const login = await supertest(B).post('/api/login').send({ name: alice.name, password: PASSWORD }).expect(200);
    const phone: TestUser = { name: alice.name, token: login.body.token, cursor: alice.cursor };
    const laptopPoll = pollEvents(A, alice, 10);
    const phonePoll = pollEvents(B, phone, 10);
    await new Promise((r) => setTimeout(r, 300));
    const sentAt = Date.now();
    const sent = await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'hello' }).expect(201);
    const phoneEvents = await phonePoll;
    expect(Date.now() - sentAt).to.be.below(1000);
    expect(phoneEvents.map((e) => e.message?.id)).to.deep.equal([sent.body.message.id]);
    await pollEvents(B, bob);
    await pollEvents(B, bob); // bob's device acknowledges: delivered
    const laptopEvents = await laptopPoll;
    expect(laptopEvents.map((e) => e.type)).to.deep.equal(['message', 'receipt']);
    expect(laptopEvents[1]).to.include({ status: 'delivered', user: bob.name });
  });

  it('with nobody to deliver to, the sending device still gets its own message within about a second', async () => {
    const { alice, conv } = await setup();
    const laptopPoll = pollEvents(A, alice, 10);
    await new Promise((r) => setTimeout(r, 300));
    const sentAt = Date.now();
    const sent = await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'anyone?' }).expect(201);
    const events = await laptopPoll;
    const took = Date.now() - sentAt;
    expect(events.map((e) => e.message?.id)).to.deep.equal([sent.body.message.id]);
    expect(took).to.be.below(2500); // deferred by one second, not held for the whole wait
  });
});
