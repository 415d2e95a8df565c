import { expect } from 'chai';
import supertest from 'supertest';
import { as, pollEvents, register, type TestUser } from '../../support/client.js';
import { roomJid } from '../../../server/transports/bosh/jids.js';
import { requireServices } from '../../support/services.js';
import { startStack, type Stack } from '../../support/stack.js';
import { BOSH_NS } from './helpers.js';
import { conditionOf, connect, disconnectAll, first, inbox, iq, loadStrophe, roundRobin, type Strophe } from './strophe-support.js';

const DOMAIN = 'localhost';
const MAM = 'urn:xmpp:mam:2';
const RSM = 'http://jabber.org/protocol/rsm';

/* eslint-disable @typescript-eslint/no-explicit-any */

describe('BOSH XEPs for web clients (Strophe.js, two nodes): MAM, carbons, host-meta, vCard, PEP', function () {
  this.timeout(60_000);
  let stack: Stack;
  let lb: Awaited<ReturnType<typeof roundRobin>>;
  let S: Strophe;
  let conns: any[] = [];
  const url = (i: number) => stack.nodes[i]!.url;

  before(async function () {
    await requireServices(this);
    S = await loadStrophe();
    stack = await startStack({ backend: 'real', nodes: 2 });
    lb = await roundRobin(stack.nodes.map((n) => n.url));
  });
  afterEach(async () => {
    await disconnectAll(S, conns);
    conns = [];
  });
  after(async () => {
    await lb?.close();
    await stack?.close();
  });

  async function client(user: TestUser, resource?: string): Promise<any> {
    const c = await connect(S, lb.url, user, DOMAIN, resource);
    conns.push(c);
    return c;
  }

  let queries = 0;
  /** One MAM query; the results (as forwarded), the fin and the IQ answer. */
  async function mam(conn: any, opts: { to?: string; with?: string; start?: string; end?: string; max?: number; before?: string; after?: string; extra?: Record<string, string> }) {
    const queryid = `q${++queries}`;
    const results: any[] = [];
    const h = conn.addHandler((st: any) => {
      const r = first(st, 'result');
      if (r?.namespaceURI === MAM && r.getAttribute('queryid') === queryid) results.push(st);
      return true;
    }, null, 'message');
    const q = S.$iq({ type: 'set', ...(opts.to ? { to: opts.to } : {}) }).c('query', { xmlns: MAM, queryid }).c('x', { xmlns: 'jabber:x:data', type: 'submit' });
    q.c('field', { var: 'FORM_TYPE', type: 'hidden' }).c('value').t(MAM).up().up();
    const fields: Record<string, string | undefined> = { with: opts.with, start: opts.start, end: opts.end, ...opts.extra };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) q.c('field', { var: k }).c('value').t(v).up().up();
    q.up().c('set', { xmlns: RSM });
    if (opts.max !== undefined) q.c('max').t(String(opts.max)).up();
    if (opts.before !== undefined) (opts.before ? q.c('before').t(opts.before) : q.c('before')).up();
    if (opts.after !== undefined) q.c('after').t(opts.after).up();
    const ans = await iq(conn, q);
    conn.deleteHandler(h);
    const fin = first(ans, 'fin');
    return {
      ans,
      condition: conditionOf(ans),
      complete: fin?.getAttribute('complete') === 'true',
      first: first(fin, 'first')?.textContent as string | undefined,
      last: first(fin, 'last')?.textContent as string | undefined,
      results: results.map((st) => {
        const inner = first(first(st, 'forwarded'), 'message');
        return {
          id: first(st, 'result').getAttribute('id') as string,
          from: st.getAttribute('from') as string,
          text: first(inner, 'body')?.textContent as string,
          inner,
          stamp: first(first(st, 'forwarded'), 'delay')?.getAttribute('stamp') as string,
        };
      }),
    };
  }

  /** alice sends n messages to bob over the JSON API (client ids c1…), bob has them delivered and read. */
  async function chat(n: number) {
    const alice = await register(url(0), 'alice');
    const bob = await register(url(1), 'bob');
    const conv = (await as(url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    await pollEvents(url(1), bob);
    for (let i = 1; i <= n; i++) {
      await as(url(i % 2), alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `m${i}`, client_id: `c${i}` }).expect(201);
    }
    await pollEvents(url(1), bob);
    await pollEvents(url(1), bob);
    await as(url(1), bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: n }).expect(204);
    return { alice, bob, conv };
  }

  const history = async (u: TestUser, convId: string) =>
    (await as(url(0), u).get(`/api/conversations/${convId}/messages?limit=200`).expect(200)).body.messages as Array<Record<string, any>>;
  const texts = (rs: Array<{ text: string }>) => rs.map((r) => r.text);
  const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => `m${a + i}`);

  describe('XEP-0313 MAM', () => {
    it('pages a direct conversation backward and forward across archived and table messages; result ids are the JSON ids', async () => {
      const { alice, bob, conv } = await chat(12);
      const report = await stack.nodes[0]!.deps.core.archive.run(new Date(Date.now() + 1000), 5);
      expect(report.messages).to.be.at.least(11);
      for (const i of [13, 14]) await as(url(0), alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `m${i}`, client_id: `c${i}` }).expect(201);
      const json = await history(bob, conv.id);
      expect(texts(json as any)).to.deep.equal(range(1, 14));
      const idOf = new Map(json.map((m) => [m.text as string, m.id as string]));

      const b = await client(bob);
      const withAlice = `${alice.name}@${DOMAIN}`;
      // Backward from the end (<before/>), as a client opening a chat does
      let p = await mam(b, { with: withAlice, max: 5, before: '' });
      expect(p.condition).to.equal('');
      expect(texts(p.results)).to.deep.equal(range(10, 14));
      expect(p.complete).to.equal(false);
      expect(p.results.map((r) => r.id)).to.deep.equal(range(10, 14).map((t) => idOf.get(t)));
      expect(p.first).to.equal(idOf.get('m10'));
      expect(p.last).to.equal(idOf.get('m14'));
      p = await mam(b, { with: withAlice, max: 5, before: p.first });
      expect(texts(p.results)).to.deep.equal(range(5, 9));
      expect(p.complete).to.equal(false);
      p = await mam(b, { with: withAlice, max: 5, before: p.first });
      expect(texts(p.results)).to.deep.equal(range(1, 4));
      expect(p.complete).to.equal(true);

      // Forward from the start, then after the last of each page
      p = await mam(b, { with: withAlice, max: 5 });
      expect(texts(p.results)).to.deep.equal(range(1, 5));
      expect(p.complete).to.equal(false);
      p = await mam(b, { with: withAlice, max: 5, after: p.last });
      expect(texts(p.results)).to.deep.equal(range(6, 10));
      p = await mam(b, { with: withAlice, max: 5, after: p.last });
      expect(texts(p.results)).to.deep.equal(range(11, 14));
      expect(p.complete).to.equal(true);

      // The forwarded message as the live one: from alice to bob, id the Parley id, stanza-id, delay stamp = sent_at
      const r = p.results[0]!;
      expect(r.from).to.equal(`${bob.name}@${DOMAIN}`);
      expect(r.inner.getAttribute('from')).to.equal(withAlice);
      expect(r.inner.getAttribute('to')).to.equal(`${bob.name}@${DOMAIN}`);
      expect(r.inner.getAttribute('type')).to.equal('chat');
      expect(first(r.inner, 'stanza-id').getAttribute('id')).to.equal(idOf.get('m11'));
      expect(r.stamp).to.equal(json[10]!.sent_at);

      // alice's own view: her messages carry her client ids, addressed to bob
      const a = await client(alice);
      const mine = await mam(a, { with: `${bob.name}@${DOMAIN}`, max: 3, before: '' });
      expect(texts(mine.results)).to.deep.equal(range(12, 14));
      expect(mine.results.map((x) => x.inner.getAttribute('id'))).to.deep.equal(['c12', 'c13', 'c14']);
      expect(mine.results[0]!.inner.getAttribute('to')).to.equal(`${bob.name}@${DOMAIN}`);
      expect(mine.results.map((x) => x.id)).to.deep.equal(range(12, 14).map((t) => idOf.get(t)));

      // Time bounds (start, end) and the form's before-id / after-id
      const startAt = json[12]!.sent_at as string;
      p = await mam(b, { with: withAlice, start: startAt });
      expect(texts(p.results)).to.deep.equal(json.filter((m) => Date.parse(m.sent_at) >= Date.parse(startAt)).map((m) => m.text));
      expect(texts(p.results)).to.include.members(['m13', 'm14']);
      const endAt = json[1]!.sent_at as string;
      p = await mam(b, { with: withAlice, end: endAt });
      expect(texts(p.results)).to.deep.equal(json.filter((m) => Date.parse(m.sent_at) <= Date.parse(endAt)).map((m) => m.text));
      expect(texts(p.results)).to.include.members(['m1', 'm2']);
      p = await mam(b, { with: withAlice, extra: { 'after-id': idOf.get('m3')!, 'before-id': idOf.get('m7')! } });
      expect(texts(p.results)).to.deep.equal(range(4, 6));
      expect(p.complete).to.equal(true);
    });

    it('a live message carries the same id as stanza-id, as the JSON id and as the MAM result id', async () => {
      const { alice, bob, conv } = await chat(1);
      const b = await client(bob);
      const got = inbox(S, b, 'message');
      b.send(S.$pres());
      // The first message is offline-delivered; wait for it so the live one is the next
      const sent = (await as(url(1), alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'live one' }).expect(201)).body.message;
      const live = await got.next((st) => first(st, 'body')?.textContent === 'live one', 'bob gets the live message');
      expect(first(live, 'stanza-id').getAttribute('id')).to.equal(sent.id);
      expect(live.getAttribute('id')).to.equal(sent.id);
      const p = await mam(b, { with: `${alice.name}@${DOMAIN}`, max: 1, before: '' });
      expect(p.results.map((r) => r.id)).to.deep.equal([sent.id]);
    });

    it('pages a group by its room JID for members only; refuses bad queries with the protocol errors', async () => {
      const alice = await register(url(0), 'alice');
      const bob = await register(url(0), 'bob');
      const carol = await register(url(0), 'carol');
      const group = (await as(url(0), alice).post('/api/conversations').send({ title: 'g', members: [bob.name] }).expect(201)).body.conversation;
      for (const t of ['g1', 'g2', 'g3']) await as(url(1), alice).post(`/api/conversations/${group.id}/messages`).send({ text: t }).expect(201);
      const room = roomJid(group.id, DOMAIN); // the lower-case room JID (jids.ts)
      const b = await client(bob);
      const p = await mam(b, { to: room, max: 10, before: '' });
      expect(texts(p.results)).to.deep.equal(['g1', 'g2', 'g3']);
      expect(p.complete).to.equal(true);
      expect(p.results[0]!.from).to.equal(room);
      expect(p.results[0]!.inner.getAttribute('from')).to.equal(`${room}/${alice.name}`);
      expect(p.results[0]!.inner.getAttribute('type')).to.equal('groupchat');
      expect(first(p.results[0]!.inner, 'stanza-id').getAttribute('by')).to.equal(room);

      // Issue 13's changes show in the archive as in the JSON history: the current text, a tombstone
      const g = (await as(url(0), bob).get(`/api/conversations/${group.id}/messages`).expect(200)).body.messages;
      await as(url(0), alice).post(`/api/conversations/${group.id}/messages/${g[0].id}/edit`).send({ text: 'g1 edited' }).expect(200);
      await as(url(1), alice).post(`/api/conversations/${group.id}/messages/${g[1].id}/delete`).expect(200);
      const changed = await mam(b, { to: room, max: 10 });
      expect(changed.results.map((r) => r.id)).to.deep.equal(g.map((m: any) => m.id));
      expect(changed.results.map((r) => r.text)).to.deep.equal(['g1 edited', undefined, 'g3']);
      expect(first(changed.results[1]!.inner, 'retracted').namespaceURI).to.equal('urn:xmpp:message-retract:1');

      const c = await client(carol);
      expect((await mam(c, { to: room, max: 10 })).condition).to.equal('forbidden');
      expect((await mam(c, { to: `nosuchgroup@groups.${DOMAIN}` })).condition).to.equal('item-not-found');
      // No conversation with that user yet: an empty, complete archive (and none is created)
      const none = await mam(c, { with: `${alice.name}@${DOMAIN}` });
      expect(none.condition).to.equal('');
      expect(none.results).to.deep.equal([]);
      expect(none.complete).to.equal(true);
      expect((await as(url(0), carol).get('/api/conversations').expect(200)).body.conversations).to.deep.equal([]);
      expect((await mam(b, { with: `${alice.name}@${DOMAIN}`, start: 'yesterday' })).condition).to.equal('bad-request');
      expect((await mam(b, { to: room, after: 'mNoSuchMessage' })).condition).to.equal('item-not-found');
      expect((await mam(b, {})).condition).to.equal('feature-not-implemented');
      expect((await mam(b, { to: room, extra: { unknown: 'x' } })).condition).to.equal('bad-request');
    });
  });

  describe('XEP-0280 carbons', () => {
    it('own messages sent from another BOSH session or the JSON API reach carbon-enabled sessions as <sent/>, once, never back to the sender', async () => {
      const dave = await register(url(0), 'dave');
      const erin = await register(url(1), 'erin');
      const conv = (await as(url(0), dave).post('/api/conversations').send({ with: erin.name }).expect(201)).body.conversation;
      const d1 = await client(dave, 'one');
      const d2 = await client(dave, 'two');
      const d3 = await client(dave, 'three'); // carbons not enabled
      const e1 = await client(erin);
      const [m1, m2, m3, me] = [d1, d2, d3, e1].map((c) => inbox(S, c, 'message'));
      for (const c of [d1, d2]) {
        const ans = await iq(c, S.$iq({ type: 'set' }).c('enable', { xmlns: 'urn:xmpp:carbons:2' }));
        expect(ans.getAttribute('type')).to.equal('result');
      }
      for (const c of [d1, d2, d3, e1]) c.send(S.$pres());
      await iq(e1, S.$iq({ type: 'get' }).c('ping', { xmlns: 'urn:xmpp:ping' })); // presence processed

      const isCarbonOf = (text: string) => (st: any) => first(st, 'sent')?.namespaceURI === 'urn:xmpp:carbons:2' && first(st, 'body')?.textContent === text;
      d1.send(S.$msg({ to: `${erin.name}@${DOMAIN}`, type: 'chat', id: 'd1-1' }).c('body').t('from d1'));
      const c2 = await m2.next(isCarbonOf('from d1'), 'd2 gets the carbon of d1\'s message');
      expect(c2.getAttribute('from')).to.equal(`${dave.name}@${DOMAIN}`);
      const fwd = first(first(c2, 'forwarded'), 'message');
      expect(fwd.getAttribute('to')).to.equal(`${erin.name}@${DOMAIN}`);
      expect(fwd.getAttribute('id')).to.equal('d1-1');
      const json = await history(dave, conv.id);
      expect(first(fwd, 'stanza-id').getAttribute('id')).to.equal(json[0]!.id);
      await me.next((st) => first(st, 'body')?.textContent === 'from d1', 'erin gets d1\'s message');

      await as(url(1), dave).post(`/api/conversations/${conv.id}/messages`).send({ text: 'from api' }).expect(201);
      await m1.next(isCarbonOf('from api'), 'd1 gets the carbon of the API message');
      await m2.next(isCarbonOf('from api'), 'd2 gets the carbon of the API message');
      await me.next((st) => first(st, 'body')?.textContent === 'from api', 'erin gets the API message');
      // Events arrive in stream order: had d1 got its own message back, it would be here by now
      expect(m1.got.filter((st: any) => first(st, 'body')?.textContent === 'from d1')).to.deep.equal([]);

      e1.send(S.$msg({ to: `${dave.name}@${DOMAIN}`, type: 'chat' }).c('body').t('reply'));
      for (const box of [m1, m2, m3]) await box.next((st) => first(st, 'body')?.textContent === 'reply' && !first(st, 'sent'), 'every dave session gets erin\'s reply directly');
      expect(m3.got.filter((st: any) => first(st, 'sent'))).to.deep.equal([]); // no carbons without enable
      // Nothing twice: each session got erin's reply once, erin each message once
      for (const box of [m1, m2, m3]) expect(box.got.filter((st: any) => first(st, 'body')?.textContent === 'reply')).to.deep.equal([]);
      expect(me.got.filter((st: any) => ['from d1', 'from api'].includes(first(st, 'body')?.textContent))).to.deep.equal([]);

      // disable: the API's next message is no carbon for d2
      await iq(d2, S.$iq({ type: 'set' }).c('disable', { xmlns: 'urn:xmpp:carbons:2' }));
      await as(url(0), dave).post(`/api/conversations/${conv.id}/messages`).send({ text: 'after disable' }).expect(201);
      await m1.next(isCarbonOf('after disable'), 'd1 still gets carbons');
      await me.next((st) => first(st, 'body')?.textContent === 'after disable', 'erin gets it');
      e1.send(S.$msg({ to: `${dave.name}@${DOMAIN}`, type: 'chat' }).c('body').t('reply 2'));
      await m2.next((st) => first(st, 'body')?.textContent === 'reply 2', 'd2 gets the next reply');
      expect(m2.got.filter(isCarbonOf('after disable'))).to.deep.equal([]);
    });
  });

  describe('XEP-0156 host-meta', () => {
    it('advertises the BOSH URL as XRD and JSON, readable from another origin, and the URL works', async () => {
      const xrd = await supertest(url(0)).get('/.well-known/host-meta').set('Origin', 'https://elsewhere.example').expect(200);
      expect(xrd.headers['access-control-allow-origin']).to.equal('*');
      expect(xrd.headers['content-type']).to.match(/^application\/xrd\+xml/);
      const href = /<Link rel="urn:xmpp:alt-connections:xbosh" href="([^"]+)"\/>/.exec(xrd.text)?.[1];
      expect(href).to.equal(`${url(0)}/http-bind`);
      const jrd = await supertest(url(0)).get('/.well-known/host-meta.json').set('Origin', 'https://elsewhere.example').expect(200);
      expect(jrd.headers['access-control-allow-origin']).to.equal('*');
      expect(jrd.body).to.deep.equal({ links: [{ rel: 'urn:xmpp:alt-connections:xbosh', href }] });
      const pre = await supertest(url(0)).options('/.well-known/host-meta.json').set('Origin', 'https://elsewhere.example').set('Access-Control-Request-Method', 'GET').expect(204);
      expect(pre.headers['access-control-allow-origin']).to.equal('*');
      // A client that found it opens a session there
      const res = await fetch(href!, {
        method: 'POST',
        body: `<body xmlns='${BOSH_NS}' xmlns:xmpp='urn:xmpp:xbosh' rid='1' to='${DOMAIN}' wait='5' hold='1' ver='1.6' xmpp:version='1.0'/>`,
      });
      expect(await res.text()).to.match(/sid='[^']+'/);
    });
  });

  describe('vCard-temp and PEP', () => {
    it('answers vCards of the user and contacts with the name, item-not-found for others; PEP reads item-not-found, publishes feature-not-implemented', async () => {
      const alice = await register(url(0), 'alice');
      const bob = await register(url(0), 'bob');
      const carol = await register(url(0), 'carol');
      await as(url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201);
      const a = await client(alice);
      const vcard = (to?: string) => iq(a, S.$iq({ type: 'get', ...(to ? { to } : {}) }).c('vCard', { xmlns: 'vcard-temp' }));
      const own = await vcard();
      expect(own.getAttribute('type')).to.equal('result');
      expect(first(own, 'FN').textContent).to.equal(alice.name);
      const contact = await vcard(`${bob.name}@${DOMAIN}`);
      expect(first(contact, 'FN').textContent).to.equal(bob.name);
      expect(first(contact, 'NICKNAME').textContent).to.equal(bob.name);
      expect(conditionOf(await vcard(`${carol.name}@${DOMAIN}`))).to.equal('item-not-found');
      expect(conditionOf(await vcard(`nobody-at-all@${DOMAIN}`))).to.equal('item-not-found');
      expect(conditionOf(await vcard(`someroom@groups.${DOMAIN}/${bob.name}`))).to.equal('item-not-found'); // occupants have none

      for (const [to, node] of [[undefined, 'eu.siacs.conversations.axolotl.devicelist'], [`${bob.name}@${DOMAIN}`, 'urn:xmpp:avatar:metadata'], [`${bob.name}@${DOMAIN}`, 'http://jabber.org/protocol/nick']] as const) {
        const ans = await iq(a, S.$iq({ type: 'get', ...(to ? { to } : {}) }).c('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' }).c('items', { node }));
        expect(conditionOf(ans), node).to.equal('item-not-found');
      }
      const pub = await iq(a, S.$iq({ type: 'set' }).c('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' })
        .c('publish', { node: 'eu.siacs.conversations.axolotl.devicelist' }).c('item', { id: 'current' }).c('list', { xmlns: 'eu.siacs.conversations.axolotl' }));
      expect(conditionOf(pub)).to.equal('feature-not-implemented');
      expect(first(pub, 'unsupported').getAttribute('feature')).to.equal('publish');
    });
  });
});
