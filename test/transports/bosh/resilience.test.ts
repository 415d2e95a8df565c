import { expect } from 'chai';
import { as, PASSWORD, pollEvents, register } from '../../support/client.js';
import { useStack } from '../../support/stack.js';
import { BOSH_NS, BoshClient, post, sleep, within } from './helpers.js';

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

  // Found by npm run chaos: of two requests with the same sid and rid on one node, the first was
  // marked "given up" and never answered, so its connection stayed open until the client or the
  // proxy cut it (nginx: a 504 after proxy_read_timeout). Junk with a made-up sid did it too.
  it('the same sid and rid twice at once on one node: both requests are answered', async () => {
    const junk = `<body xmlns='${BOSH_NS}' rid='1' sid='nosuchsid${Date.now()}'/>`;
    const answers = await within(Promise.all(Array.from({ length: 8 }, () => post(A, junk))), 5000, 'eight requests of one unknown sid');
    for (const a of answers) expect(a.text).to.contain("condition='item-not-found'");

    const alice = await register(A, 'alice');
    const bob = await register(A, 'bob');
    const conv = (await as(A, bob).post('/api/conversations').send({ with: alice.name }).expect(201)).body.conversation;
    const c = new BoshClient([A], DOMAIN);
    await c.create();
    await c.login(alice.name, PASSWORD);
    await c.send(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);
    // The held request, and the same rid again (a proxy's retry) while the first is still open.
    const req = c.build();
    const first = post(A, req.xml);
    await sleep(300);
    const second = post(A, req.xml);
    await sleep(300);
    await as(A, bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'both of you' }).expect(201);
    const [a1, a2] = await within(Promise.all([first, second]), 5000, 'both requests of one rid');
    // Both get the one answer: bob's presence or his message, whichever reached alice's stream first.
    expect(a2.stanzas.length, a2.text).to.be.greaterThan(0);
    expect(a1.text).to.equal(a2.text);
  });
});
