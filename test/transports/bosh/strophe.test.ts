import { expect } from 'chai';
import { as, pollEvents, register, type TestUser } from '../../support/client.js';
import { requireServices } from '../../support/services.js';
import { startStack, type Stack } from '../../support/stack.js';
import { within } from './helpers.js';
import { connect as connectTo, inbox as inboxOf, loadStrophe, roundRobin } from './strophe-support.js';

const DOMAIN = 'localhost';

/* eslint-disable @typescript-eslint/no-explicit-any */
type StropheModule = any;

describe('Strophe.js (unmodified) against Parley BOSH on two nodes', function () {
  this.timeout(60_000);
  let stack: Stack;
  let lb: Awaited<ReturnType<typeof roundRobin>>;
  let S: StropheModule;
  const conns: any[] = [];

  before(async function () {
    await requireServices(this);
    S = await loadStrophe();
    stack = await startStack({ backend: 'real', nodes: 2 });
    lb = await roundRobin(stack.nodes.map((n) => n.url));
  });
  after(async () => {
    for (const c of conns) {
      try {
        c.reset?.();
      } catch {
        /* already gone */
      }
    }
    await lb?.close();
    await stack?.close();
  });

  /** Connect a Strophe client through the balancer and wait until it is bound. */
  const connect = (user: TestUser): Promise<any> => connectTo(S, lb.url, user, DOMAIN, undefined, conns);
  /** Stanzas of one kind arriving at a connection (strophe-support.ts). */
  const inbox = (conn: any, name: 'message' | 'presence') => inboxOf(S, conn, name);

  const bodyOf = (st: any) => st.getElementsByTagName('body')[0]?.textContent;

  it('connects with SASL PLAIN, binds, gets the roster, chats with another Strophe client and a long-poll client, and gets receipts', async () => {
    const alice = await register(stack.nodes[0]!.url, 'alice');
    const bob = await register(stack.nodes[1]!.url, 'bob');
    const carol = await register(stack.nodes[0]!.url, 'carol');
    await as(stack.nodes[0]!.url, alice).post('/api/conversations').send({ with: bob.name }).expect(201);
    await pollEvents(stack.nodes[0]!.url, carol);

    const a = await connect(alice);
    const b = await connect(bob);
    expect(a.jid).to.match(new RegExp(`^${alice.name}@${DOMAIN}/.+`));
    const aMsgs = inbox(a, 'message');
    const bMsgs = inbox(b, 'message');

    // Roster = contacts.
    const roster: any = await within(new Promise((res, rej) => a.sendIQ(S.$iq({ type: 'get' }).c('query', { xmlns: 'jabber:iq:roster' }), res, rej)), 10_000, 'roster');
    const items = Array.from(roster.getElementsByTagName('item') as ArrayLike<any>).map((i: any) => i.getAttribute('jid'));
    expect(items).to.deep.equal([`${bob.name}@${DOMAIN}`]);

    a.send(S.$pres());
    b.send(S.$pres());

    // alice → bob (Strophe to Strophe), asking for a receipt.
    a.send(S.$msg({ to: `${bob.name}@${DOMAIN}`, type: 'chat', id: 'a-1' }).c('body').t('hello bob').up().c('request', { xmlns: 'urn:xmpp:receipts' }));
    const m1 = await bMsgs.next((st) => bodyOf(st) === 'hello bob', 'bob gets alice\'s message');
    expect(m1.getAttribute('from')).to.equal(`${alice.name}@${DOMAIN}`);
    expect(m1.getAttribute('type')).to.equal('chat');
    // bob's client confirmed the response that carried it: alice hears "delivered" (XEP-0184).
    const r1 = await aMsgs.next((st) => st.getElementsByTagName('received')[0]?.getAttribute('id') === 'a-1', 'alice gets a receipt');
    expect(r1.getAttribute('from')).to.equal(`${bob.name}@${DOMAIN}`);

    // bob → alice, and bob marks alice's message displayed (XEP-0333): read, shown to the long-poll API too.
    b.send(S.$msg({ to: `${alice.name}@${DOMAIN}`, type: 'chat' }).c('body').t('hi alice'));
    await aMsgs.next((st) => bodyOf(st) === 'hi alice', 'alice gets bob\'s reply');
    b.send(S.$msg({ to: `${alice.name}@${DOMAIN}`, type: 'chat' }).c('displayed', { xmlns: 'urn:xmpp:chat-markers:0', id: m1.getAttribute('id') }));
    const deadline = Date.now() + 10_000;
    let status = '';
    while (Date.now() < deadline && status !== 'read') {
      const convs = (await as(stack.nodes[1]!.url, alice).get('/api/conversations').expect(200)).body.conversations;
      status = convs.find((c: any) => c.members.includes(bob.name))?.last_message?.status ?? '';
      const lm = convs.find((c: any) => c.members.includes(bob.name))?.last_message;
      if (lm?.from === bob.name) {
        // the last message is bob's reply; look at alice's own message in history instead
        const hist = (await as(stack.nodes[1]!.url, alice).get(`/api/conversations/${lm.conversation}/messages`).expect(200)).body.messages;
        status = hist.find((m: any) => m.text === 'hello bob')?.status ?? '';
      }
      if (status !== 'read') await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).to.equal('read');

    // carol (long-poll) ↔ alice (Strophe): one core, two framings.
    a.send(S.$msg({ to: `${carol.name}@${DOMAIN}`, type: 'chat', id: 'a-2' }).c('body').t('hello carol'));
    let carolGot: any;
    for (let i = 0; i < 10 && !carolGot; i++) carolGot = (await pollEvents(stack.nodes[1]!.url, carol, 5)).find((e) => e.type === 'message');
    expect(carolGot.message).to.include({ text: 'hello carol', from: alice.name });
    await as(stack.nodes[1]!.url, carol).post(`/api/conversations/${carolGot.message.conversation}/messages`).send({ text: 'hi from long-poll' }).expect(201);
    const fromCarol = await aMsgs.next((st) => bodyOf(st) === 'hi from long-poll', 'alice gets carol\'s long-poll message');
    expect(fromCarol.getAttribute('from')).to.equal(`${carol.name}@${DOMAIN}`);

    // The load balancer really did spread the requests.
    expect(lb.counts[0]).to.be.greaterThan(3);
    expect(lb.counts[1]).to.be.greaterThan(3);

    await new Promise<void>((resolve) => {
      let n = 0;
      for (const c of [a, b]) {
        c.addHandler(() => true, null, 'never');
        const orig = c.connect_callback;
        c.connect_callback = (s: number) => {
          orig?.(s);
          if (s === S.Strophe.Status.DISCONNECTED && ++n === 2) resolve();
        };
        c.disconnect('done');
      }
      setTimeout(resolve, 5000);
    });
  });
});
