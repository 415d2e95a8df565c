import { expect } from 'chai';
import supertest from 'supertest';
import { PASSWORD, as, register } from '../../support/client.js';
import { startStack, type Stack } from '../../support/stack.js';
import { b64, BoshClient, craftedNamespaceBody, post, BOSH_NS } from './helpers.js';

const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const auth = (name: string, password: string) => `<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${name}\0${password}`)}</auth>`;

/** Issue 11 items 1 and 6: what one BOSH request, one session and one address may cost. */
describe('BOSH abuse limits', function () {
  this.timeout(60_000);
  let stack: Stack;
  let url: string;
  before(async () => {
    stack = await startStack({
      backend: 'embedded',
      env: { RATE_LIMIT: 'on', LOGIN_ATTEMPTS: '3', REQUESTS_PER_MINUTE: '20', BOSH_SESSIONS_PER_MINUTE: '1000' },
    });
    url = stack.nodes[0]!.url;
  });
  after(async () => stack?.close());

  it('a body with 20 <auth> elements is one password check: the session ends with policy-violation and the name is not locked', async () => {
    const bob = await register(url, 'bob');
    const c = new BoshClient([url], 'localhost');
    await c.create({ wait: 5 });
    const t0 = Date.now();
    const answer = await c.send(Array.from({ length: 20 }, (_, i) => auth(bob.name, `guess number ${i}`)).join(''));
    expect(answer.body!.attrs).to.include({ type: 'terminate', condition: 'remote-stream-error' });
    expect(answer.text).to.contain('<policy-violation');
    expect(answer.text.match(/<not-authorized\/>/g) ?? []).to.have.length(1);
    expect(Date.now() - t0).to.be.below(2_000); // not 20 scrypt runs
    // one failure counted (LOGIN_ATTEMPTS=3), not 20: the right password still works
    await supertest(url).post('/api/login').send({ name: bob.name, password: PASSWORD }).expect(200);
  });

  it('a session gets 3 SASL attempts; the third failure ends the stream with policy-violation', async () => {
    const carol = await register(url, 'carol');
    const c = new BoshClient([url], 'localhost');
    await c.create({ wait: 5 });
    expect((await c.send(auth(carol.name, 'wrong one'))).text).to.contain('<not-authorized/>');
    expect((await c.send(auth(carol.name, 'wrong two'))).text).to.contain('<not-authorized/>');
    const third = await c.send(auth(carol.name, 'wrong three'));
    expect(third.body!.attrs).to.include({ type: 'terminate' });
    expect(third.text).to.contain('<policy-violation');
    const after = await c.send(auth(carol.name, PASSWORD));
    expect(after.body!.attrs).to.include({ type: 'terminate', condition: 'item-not-found' });
  });

  it('a body with 300 messages is refused before any is sent; stanzas spend the REQUESTS_PER_MINUTE budget', async () => {
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const c = new BoshClient([url], 'localhost');
    await c.create({ wait: 5 });
    await c.login(alice.name, PASSWORD);
    const msg = (i: number) => `<message xmlns='jabber:client' to='${bob.name}@localhost' type='chat' id='m${i}'><body>spam ${i}</body></message>`;
    const flood = await c.send(Array.from({ length: 300 }, (_, i) => msg(i)).join(''));
    expect(flood.body!.attrs).to.include({ type: 'terminate', condition: 'policy-violation' });
    const conversations = await as(url, bob).get('/api/conversations').expect(200);
    expect(conversations.body.conversations).to.deep.equal([]);

    // 25 messages in small bodies against a budget of 20 a minute (login took 2 of it)
    const d = new BoshClient([url], 'localhost');
    await d.create({ wait: 1 });
    await d.login(alice.name, PASSWORD);
    let refused = 0;
    for (let i = 0; i < 5; i++) {
      const r = await d.send(Array.from({ length: 5 }, (_, j) => msg(100 + i * 5 + j)).join(''));
      refused += (r.text.match(/<resource-constraint/g) ?? []).length;
    }
    expect(refused).to.be.at.least(5);
    const history = await as(url, bob).get('/api/conversations').expect(200);
    const id = history.body.conversations[0].id as string;
    const messages = await as(url, bob).get(`/api/conversations/${id}/messages?limit=100`).expect(200);
    expect(messages.body.messages.length).to.be.at.most(20);
  });
});

describe('BOSH body parsing cost', function () {
  this.timeout(30_000);
  let stack: Stack;
  before(async () => (stack = await startStack({ backend: 'embedded' })));
  after(async () => stack?.close());

  it('the crafted 64 KB namespace body is answered in under 20 ms (it took 360-450 ms of CPU; issue 11 item 5)', async () => {
    const body = craftedNamespaceBody();
    expect(body.length).to.be.within(60_000, 65_536);
    const times: number[] = [];
    await post(stack.nodes[0]!.url, body); // warm the parser's code up
    for (let i = 0; i < 7; i++) {
      const a = await post(stack.nodes[0]!.url, body);
      expect(a.body!.attrs).to.include({ type: 'terminate', condition: 'item-not-found' });
      times.push(a.ms);
    }
    // The best of seven: a slow run on a shared machine is scheduling, not parsing.
    expect(Math.min(...times), times.join(', ')).to.be.below(20);
  });
});

describe('BOSH session creation per address', function () {
  this.timeout(30_000);
  let stack: Stack;
  let url: string;
  before(async () => {
    stack = await startStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', BOSH_SESSIONS_PER_MINUTE: '5' } });
    url = stack.nodes[0]!.url;
  });
  after(async () => stack?.close());

  it('the 6th session in a minute from one address is refused with policy-violation', async () => {
    const conditions: string[] = [];
    for (let i = 0; i < 7; i++) {
      const a = await post(url, `<body xmlns='${BOSH_NS}' rid='${1000 + i}' to='localhost' wait='5' hold='1' ver='1.6'/>`);
      conditions.push(a.body!.attrs.type === 'terminate' ? a.body!.attrs.condition! : 'created');
    }
    expect(conditions).to.deep.equal(['created', 'created', 'created', 'created', 'created', 'policy-violation', 'policy-violation']);
  });
});
