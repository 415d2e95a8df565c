import { expect } from 'chai';
import { as, PASSWORD, pollEvents, register } from '../../support/client.js';
import { useStack } from '../../support/stack.js';
import { BoshClient, post, sleep } from './helpers.js';

const DOMAIN = 'localhost';

describe('BOSH under Heroku and node failure', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'real', nodes: 2 });
  let A: string;
  let B: string;
  before(() => {
    [A, B] = [suite.url(0), suite.url(1)];
  });

  it("Heroku: a client asking wait='60' is answered within 25 s (the router cuts at 30 s)", async () => {
    const alice = await register(A, 'alice');
    const c = new BoshClient([A, B], DOMAIN);
    const created = await c.create({ wait: 60 });
    expect(created.body!.attrs.wait).to.equal('25');
    await c.login(alice.name, PASSWORD);
    // Initial presence with a ping, so that this answer comes at once and the next request is the held one.
    await c.send(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const held = await c.send();
    expect(held.status).to.equal(200);
    expect(held.stanzas).to.have.length(0);
    expect(held.ms).to.be.below(25_000);
    expect(held.ms).to.be.above(20_000); // it was really held, not answered at once
  });

  it('a node killed with a held request costs the client a retry, not its session and not a message', async () => {
    const alice = await register(A, 'alice');
    const bob = await register(A, 'bob');
    const conv = (await as(A, bob).post('/api/conversations').send({ with: alice.name }).expect(201)).body.conversation;
    await pollEvents(A, bob);
    await sleep(1500); // bob's "online" reaches alice's stream (presence is coalesced for 1 s)
    const c = new BoshClient([A], DOMAIN);
    await c.create();
    await c.login(alice.name, PASSWORD);
    // Initial presence (with a ping for an immediate answer) takes whatever is already in her stream.
    await c.send(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);

    // alice's next request is held on node B; node B dies.
    const req = c.build();
    const lost = post(B, req.xml).then(
      () => 'answered',
      () => 'connection lost',
    );
    await sleep(300);
    expect(suite.stack.nodes[1]!.deps.lot.parked).to.equal(1);
    await suite.stack.nodes[1]!.kill();
    expect(await lost).to.equal('connection lost');

    // bob writes meanwhile; alice's client retries the same request on node A, as Strophe does.
    await as(A, bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'did you get this?' }).expect(201);
    const t0 = Date.now();
    let seen = (await post(A, req.xml)).text;
    for (let i = 0; i < 3 && !seen.includes('did you get this?'); i++) seen += (await c.send()).text;
    expect(seen).to.contain('<body>did you get this?</body>');
    expect(Date.now() - t0).to.be.below(5000);
    const next = await c.send(`<iq xmlns='jabber:client' type='get' id='still'><ping xmlns='urn:xmpp:ping'/></iq>`);
    expect(next.text).to.contain("id='still'");
  });
});
