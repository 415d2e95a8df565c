import { expect } from 'chai';
import supertest from 'supertest';
import { PASSWORD, register } from '../../support/client.js';
import { requireServices } from '../../support/services.js';
import { startStack, type Stack } from '../../support/stack.js';
import { b64, BoshClient } from './helpers.js';

/** Failed logins count once per name, whichever door they knock on: BOSH SASL or /api/login. */
describe('BOSH and JSON logins share the failed-login limit', function () {
  this.timeout(40_000);
  let stack: Stack;
  let nodes: string[];
  before(async function () {
    await requireServices(this);
    stack = await startStack({ backend: 'real', nodes: 2, env: { RATE_LIMIT: 'on', LOGIN_ATTEMPTS: '3' } });
    nodes = stack.nodes.map((n) => n.url);
  });
  after(async () => stack?.close());

  const sasl = (c: BoshClient, name: string, password: string) =>
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64(`\0${name}\0${password}`)}</auth>`);

  it('after 3 failed JSON logins, BOSH refuses even the right password with temporary-auth-failure', async () => {
    const bob = await register(nodes[0]!, 'bob');
    for (let i = 0; i < 3; i++) await supertest(nodes[i % 2]!).post('/api/login').send({ name: bob.name, password: 'wrong password' }).expect(401);
    const c = new BoshClient(nodes, 'localhost');
    await c.create({ wait: 5 });
    const refused = await sasl(c, bob.name, PASSWORD);
    expect(refused.text).to.contain('<temporary-auth-failure/>');
  });

  it('after 3 failed SASL attempts, /api/login answers 429 with Retry-After', async () => {
    const carol = await register(nodes[0]!, 'carol');
    const c = new BoshClient(nodes, 'localhost');
    await c.create({ wait: 5 });
    for (let i = 0; i < 3; i++) expect((await sasl(c, carol.name, 'wrong password')).text).to.contain('<not-authorized/>');
    const res = await supertest(nodes[1]!).post('/api/login').send({ name: carol.name, password: PASSWORD }).expect(429);
    expect(res.headers['retry-after']).to.be.a('string');
  });
});
