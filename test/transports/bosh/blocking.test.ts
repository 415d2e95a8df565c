import { expect } from 'chai';
import { accept, as, PASSWORD, pollEvents, register } from '../../support/client.js';
import { requireServices } from '../../support/services.js';
import { flushPresence, startStack, type Stack } from '../../support/stack.js';
import { BLOCKING_FEATURES, NS_BLOCKING } from '../../../server/transports/bosh/blocking.js';
import { BoshClient } from './helpers.js';

const DOMAIN = 'localhost';
const iq = (type: string, id: string, inner: string) => `<iq xmlns='jabber:client' type='${type}' id='${id}'>${inner}</iq>`;

/** XEP-0191 over BOSH, on two nodes, and what a block means for a BOSH client's roster and presence. */
describe('BOSH: XEP-0191 blocking command', function () {
  this.timeout(40_000);
  let stack: Stack;
  let nodes: string[];
  before(async function () {
    await requireServices(this);
    stack = await startStack({ backend: 'real', nodes: 2 });
    nodes = stack.nodes.map((n) => n.url);
  });
  after(async () => stack?.close());

  async function loggedIn(base: string) {
    const user = await register(nodes[0]!, base);
    const c = new BoshClient(nodes, DOMAIN);
    await c.create({ wait: 5 });
    await c.login(user.name, PASSWORD);
    return { c, user };
  }

  it('disco#info lists urn:xmpp:blocking', async () => {
    expect(BLOCKING_FEATURES).to.deep.equal(['urn:xmpp:blocking']);
    const { c } = await loggedIn('alice');
    const info = await c.send(iq('get', 'd1', `<query xmlns='http://jabber.org/protocol/disco#info'/>`));
    expect(info.text).to.contain(`<feature var='urn:xmpp:blocking'/>`);
  });

  it('blocklist, block and unblock are the JSON API blocks, seen from either door', async () => {
    const { c, user: alice } = await loggedIn('alice');
    const bob = await register(nodes[1]!, 'bob');
    const carol = await register(nodes[1]!, 'carol');
    const empty = await c.send(iq('get', 'l1', `<blocklist xmlns='${NS_BLOCKING}'/>`));
    expect(empty.text).to.contain(`type='result' id='l1'`);
    expect(empty.text).to.contain(`<blocklist xmlns='${NS_BLOCKING}'/>`);
    const blocked = await c.send(
      iq('set', 'b1', `<block xmlns='${NS_BLOCKING}'><item jid='${bob.name}@${DOMAIN}'/><item jid='${carol.name.toUpperCase()}@${DOMAIN}'/></block>`),
    );
    expect(blocked.text).to.contain(`type='result' id='b1'`);
    expect((await as(nodes[1]!, alice).get('/api/blocks').expect(200)).body.blocks).to.deep.equal([bob.name, carol.name].sort());
    const list = await c.send(iq('get', 'l2', `<blocklist xmlns='${NS_BLOCKING}'/>`));
    expect(list.text).to.contain(`<item jid='${bob.name}@${DOMAIN}'/>`);
    expect(list.text).to.contain(`<item jid='${carol.name}@${DOMAIN}'/>`);
    // the block holds for the JSON API: bob may not open a conversation with alice
    expect((await as(nodes[1]!, bob).post('/api/conversations').send({ with: alice.name }).expect(403)).body.error.code).to.equal('blocked');
    await c.send(iq('set', 'u1', `<unblock xmlns='${NS_BLOCKING}'><item jid='${bob.name}@${DOMAIN}'/></unblock>`));
    expect((await as(nodes[0]!, alice).get('/api/blocks').expect(200)).body.blocks).to.deep.equal([carol.name]);
    // an unblock without items unblocks everyone (§3.4)
    const all = await c.send(iq('set', 'u2', `<unblock xmlns='${NS_BLOCKING}'/>`));
    expect(all.text).to.contain(`type='result' id='u2'`);
    expect((await as(nodes[0]!, alice).get('/api/blocks').expect(200)).body.blocks).to.deep.equal([]);
  });

  it('bad items are stanza errors: no item, a full JID, another domain, an unknown user', async () => {
    const { c } = await loggedIn('alice');
    const bob = await register(nodes[1]!, 'bob');
    const none = await c.send(iq('set', 'e1', `<block xmlns='${NS_BLOCKING}'/>`));
    expect(none.text).to.contain(`type='error' id='e1'`);
    expect(none.text).to.contain('<bad-request');
    const full = await c.send(iq('set', 'e2', `<block xmlns='${NS_BLOCKING}'><item jid='${bob.name}@${DOMAIN}/phone'/></block>`));
    expect(full.text).to.contain('<bad-request');
    const other = await c.send(iq('set', 'e3', `<block xmlns='${NS_BLOCKING}'><item jid='someone@elsewhere.org'/></block>`));
    expect(other.text).to.contain('<item-not-found');
    const unknown = await c.send(iq('set', 'e4', `<block xmlns='${NS_BLOCKING}'><item jid='nobody-at-all-here@${DOMAIN}'/></block>`));
    expect(unknown.text).to.contain(`type='error' id='e4'`);
    expect(unknown.text).to.contain('<item-not-found');
  });

  it('a BOSH user blocked by alice gets no presence of hers and cannot message her (forbidden)', async () => {
    const { c, user: bob } = await loggedIn('bob');
    const alice = await register(nodes[1]!, 'alice');
    const conv = (await as(nodes[1]!, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    await accept(nodes[0]!, bob, conv.id);
    // what alice's presence said before the block reaches bob's stream now, and bob reads past it
    await flushPresence(stack);
    await pollEvents(nodes[0]!, bob);
    await pollEvents(nodes[0]!, bob);
    await as(nodes[1]!, alice).post('/api/blocks').send({ name: bob.name }).expect(204);
    await as(nodes[1]!, alice).post('/api/heartbeat').expect(204);
    const roster = await c.send(iq('get', 'r1', `<query xmlns='jabber:iq:roster'/>`));
    expect(roster.text).to.contain(`jid='${alice.name}@${DOMAIN}'`); // still a contact: a block hides presence, not the conversation
    // initial presence: the contacts that are online are announced; alice is not, to bob
    const initial = await c.send(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`);
    expect(initial.text).to.contain(`id='p0'`);
    await flushPresence(stack);
    const later = await c.send(iq('get', 'p1', `<ping xmlns='urn:xmpp:ping'/>`));
    for (const text of [initial.text, later.text]) expect(text).not.to.contain(`<presence xmlns='jabber:client' from='${alice.name}@`);
    const refused = await c.send(`<message xmlns='jabber:client' to='${alice.name}@${DOMAIN}' type='chat' id='m1'><body>let me in</body></message>`);
    expect(refused.text).to.contain(`type='error' id='m1'`);
    expect(refused.text).to.contain('<forbidden');
    expect((await pollEvents(nodes[1]!, alice)).filter((e) => e.type === 'message')).to.deep.equal([]);
  });
});
