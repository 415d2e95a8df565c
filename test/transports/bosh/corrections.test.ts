import { expect } from 'chai';
import { as, register, type TestUser } from '../../support/client.js';
import { useStack } from '../../support/stack.js';
import { within } from './helpers.js';
import { connect as connectTo, inbox as inboxOf, loadStrophe } from './strophe-support.js';

const DOMAIN = 'localhost';

/* eslint-disable @typescript-eslint/no-explicit-any */
describe('BOSH: corrections (XEP-0308), retractions (XEP-0424), replies (XEP-0461) and reactions (XEP-0444) with Strophe.js', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'real', nodes: 2 });
  let S: any;
  const conns: any[] = [];

  before(async () => {
    S = await loadStrophe();
  });
  after(async () => {
    await Promise.all(
      conns.map(
        (c) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 3000);
            const orig = c.connect_callback;
            c.connect_callback = (st: number) => {
              orig?.(st);
              if (st === S.Strophe.Status.DISCONNECTED) {
                clearTimeout(t);
                resolve();
              }
            };
            try {
              c.disconnect('done');
            } catch {
              clearTimeout(t);
              resolve();
            }
          }),
      ),
    );
  });

  async function connect(user: TestUser, node: number): Promise<any> {
    const conn = await connectTo(S, suite.url(node), user, DOMAIN, undefined, conns);
    conn.send(S.$pres());
    return conn;
  }

  /** Messages arriving at a connection (strophe-support.ts). */
  const inbox = (conn: any) => inboxOf(S, conn, 'message');

  const first = (st: any, name: string, ns?: string) => {
    const list = Array.from(st.getElementsByTagName(name) as ArrayLike<any>);
    return list.find((e: any) => !ns || e.namespaceURI === ns || e.getAttribute('xmlns') === ns);
  };
  const bodyOf = (st: any) => first(st, 'body')?.textContent;

  it('alice corrects and retracts, bob reacts (his set replaces the last) and replies; the JSON API and the other client see each change', async () => {
    const alice = await register(suite.url(0), 'alice');
    const bob = await register(suite.url(1), 'bob');
    const conv = (await as(suite.url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    await as(suite.url(1), bob).post(`/api/conversations/${conv.id}/accept`).expect(204);
    const a = await connect(alice, 0);
    const b = await connect(bob, 1);
    const aIn = inbox(a);
    const bIn = inbox(b);
    const history = async () => (await as(suite.url(0), alice).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages as any[];

    // the features are advertised
    const info: any = await within(
      new Promise((res, rej) => a.sendIQ(S.$iq({ type: 'get', to: DOMAIN }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), res, rej)),
      10_000,
      'disco#info',
    );
    const features = Array.from(info.getElementsByTagName('feature') as ArrayLike<any>).map((f: any) => f.getAttribute('var'));
    expect(features).to.include.members(['urn:xmpp:message-correct:0', 'urn:xmpp:message-retract:1', 'urn:xmpp:reactions:0', 'urn:xmpp:reply:0']);

    a.send(S.$msg({ to: `${bob.name}@${DOMAIN}`, type: 'chat', id: 'a-1' }).c('body').t('helo'));
    const m1 = await bIn.next((st) => bodyOf(st) === 'helo', 'bob gets the message');
    const m1id = m1.getAttribute('id') as string; // the Parley id

    // XEP-0308: alice corrects it, naming it by her own stanza id
    a.send(S.$msg({ to: `${bob.name}@${DOMAIN}`, type: 'chat', id: 'a-2' }).c('body').t('hello').up().c('replace', { xmlns: 'urn:xmpp:message-correct:0', id: 'a-1' }));
    const fixed = await bIn.next((st) => !!first(st, 'replace'), 'bob gets the correction');
    expect(bodyOf(fixed)).to.equal('hello');
    expect(first(fixed, 'replace').getAttribute('id')).to.equal(m1id);
    expect(fixed.getAttribute('from')).to.equal(`${alice.name}@${DOMAIN}`);
    expect((await history())[0]).to.include({ id: m1id, text: 'hello' }).and.have.property('edited_at');

    // XEP-0444: bob reacts with two, then sends a set of one: the set replaces his reactions
    b.send(S.$msg({ to: `${alice.name}@${DOMAIN}`, type: 'chat', id: 'b-1' }).c('reactions', { xmlns: 'urn:xmpp:reactions:0', id: m1id }).c('reaction').t('👍').up().c('reaction').t('🎉'));
    const r1 = await aIn.next((st) => !!first(st, 'reactions'), 'alice gets bob\'s reactions');
    expect(first(r1, 'reactions').getAttribute('id')).to.equal('a-1'); // as alice knows her message
    expect(Array.from(r1.getElementsByTagName('reaction') as ArrayLike<any>).map((r: any) => r.textContent)).to.deep.equal(['👍', '🎉']);
    b.send(S.$msg({ to: `${alice.name}@${DOMAIN}`, type: 'chat', id: 'b-2' }).c('reactions', { xmlns: 'urn:xmpp:reactions:0', id: m1id }).c('reaction').t('🎉'));
    const r2 = await aIn.next((st) => !!first(st, 'reactions'), 'alice gets bob\'s new set');
    expect(Array.from(r2.getElementsByTagName('reaction') as ArrayLike<any>).map((r: any) => r.textContent)).to.deep.equal(['🎉']);
    expect((await history())[0].reactions).to.deep.equal([{ emoji: '🎉', users: [bob.name] }]);

    // XEP-0461: bob replies to it
    b.send(S.$msg({ to: `${alice.name}@${DOMAIN}`, type: 'chat', id: 'b-3' }).c('body').t('indeed').up().c('reply', { xmlns: 'urn:xmpp:reply:0', to: `${alice.name}@${DOMAIN}`, id: m1id }));
    const reply = await aIn.next((st) => bodyOf(st) === 'indeed', 'alice gets the reply');
    expect(first(reply, 'reply', 'urn:xmpp:reply:0').getAttribute('id')).to.equal(m1id);
    expect((await history()).find((m) => m.text === 'indeed').reply_to).to.deep.equal({ id: m1id, from: alice.name, text: 'hello' });

    // bob may not correct alice's message: a stanza error
    b.send(S.$msg({ to: `${alice.name}@${DOMAIN}`, type: 'chat', id: 'b-4' }).c('body').t('hijack').up().c('replace', { xmlns: 'urn:xmpp:message-correct:0', id: m1id }));
    const refused = await bIn.next((st) => st.getAttribute('type') === 'error' && st.getAttribute('id') === 'b-4', 'bob is refused');
    expect(first(refused, 'forbidden')).to.not.equal(undefined);

    // XEP-0424: alice retracts it
    a.send(S.$msg({ to: `${bob.name}@${DOMAIN}`, type: 'chat', id: 'a-3' }).c('retract', { xmlns: 'urn:xmpp:message-retract:1', id: 'a-1' }));
    const gone = await bIn.next((st) => !!first(st, 'retract'), 'bob gets the retraction');
    expect(first(gone, 'retract').getAttribute('id')).to.equal(m1id);
    expect((await history())[0]).to.include({ id: m1id, text: '', deleted: true });
    expect((await history()).find((m) => m.text === 'indeed').reply_to).to.deep.equal({ id: m1id, from: alice.name, text: '', deleted: true });

    // a change made through the JSON API reaches the XMPP client as a correction too
    const m2 = (await as(suite.url(1), bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'typo' }).expect(201)).body.message;
    await aIn.next((st) => bodyOf(st) === 'typo', 'alice gets bob\'s JSON message');
    await as(suite.url(1), bob).post(`/api/conversations/${conv.id}/messages/${m2.id}/edit`).send({ text: 'no typo' }).expect(200);
    const viaApi = await aIn.next((st) => first(st, 'replace')?.getAttribute('id') === m2.id, 'alice gets the JSON edit as a correction');
    expect(bodyOf(viaApi)).to.equal('no typo');
  });
});
