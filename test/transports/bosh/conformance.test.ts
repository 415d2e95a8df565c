import { expect } from 'chai';
import net from 'node:net';
import { as, PASSWORD, pollEvents, register, type TestUser } from '../../support/client.js';
import { roomJid } from '../../../server/transports/bosh/jids.js';
import { requireServices } from '../../support/services.js';
import { startStack, type Stack } from '../../support/stack.js';
import { b64, BOSH_NS, BoshClient, post, sleep, within } from './helpers.js';

const DOMAIN = 'localhost';

/**
 * XEP-0124 over real HTTP, every request of a sid going round-robin over two nodes that share
 * PostgreSQL and Redis (a load balancer that is not sticky).
 */
describe('BOSH conformance (XEP-0124/0206) on two nodes', function () {
  this.timeout(40_000);
  let stack: Stack;
  let nodes: string[];
  before(async function () {
    await requireServices(this);
    stack = await startStack({ backend: 'real', nodes: 2 });
    nodes = stack.nodes.map((n) => n.url);
  });
  after(async () => stack?.close());

  const client = () => new BoshClient(nodes, DOMAIN);
  async function loggedIn(base = 'u'): Promise<{ c: BoshClient; user: TestUser }> {
    const user = await register(nodes[0]!, base);
    const c = client();
    await c.create({ wait: 5 }); // a request left held at the end of a test costs 5 s, not 25
    await c.login(user.name, PASSWORD);
    return { c, user };
  }

  describe('session creation', function () {
    it('answers the creation attributes, clamps wait to 25 s, offers SASL PLAIN, with Content-Length and no chunking', async () => {
      const c = client();
      const a = await c.create({ wait: 60, hold: 1, ack: 1 });
      const b = a.body!;
      expect(b.ns).to.equal(BOSH_NS);
      expect(b.attrs).to.include({ wait: '25', requests: '2', hold: '1', polling: '2', inactivity: '60', maxpause: '120', ver: '1.6', from: DOMAIN });
      expect(b.attrs.ack).to.equal(String(c.rid - 1));
      expect(b.attrs.sid).to.match(/^[A-Za-z0-9_-]{22}$/);
      expect(b.attrs.authid).to.equal(b.attrs.sid);
      expect(b.attrs['xmpp:version']).to.equal('1.0');
      expect(a.text).to.contain("<mechanism>PLAIN</mechanism>");
      expect(a.headers.get('content-type')).to.equal('text/xml; charset=utf-8');
      expect(a.headers.get('content-length')).to.equal(String(Buffer.byteLength(a.text)));
      expect(a.headers.get('transfer-encoding')).to.equal(null);
    });

    it('gives unpredictable sids and answers the lower ver', async () => {
      const x = await client().create({ ver: '1.20' });
      const y = await client().create({ ver: '1.6' });
      expect(x.body!.attrs.sid).to.not.equal(y.body!.attrs.sid);
      expect(x.body!.attrs.ver).to.equal('1.11');
    });

    it('ignores the request Content-Type', async () => {
      const a = await post(nodes[1]!, `<body xmlns='${BOSH_NS}' rid='77' to='${DOMAIN}' wait='5' hold='1' ver='1.6'/>`, 'application/x-www-form-urlencoded');
      expect(a.body!.attrs.sid).to.be.a('string');
    });

    it("refuses another domain with host-unknown", async () => {
      const a = await post(nodes[0]!, `<body xmlns='${BOSH_NS}' rid='5' to='elsewhere.example' ver='1.6'/>`);
      expect(a.status).to.equal(200);
      expect(a.body!.attrs).to.include({ type: 'terminate', condition: 'host-unknown' });
    });

    it('answers CORS preflight for an allowed origin', async () => {
      const res = await fetch(`${nodes[0]}/http-bind`, { method: 'OPTIONS', headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'POST' } });
      expect(res.status).to.equal(204);
      expect(res.headers.get('access-control-allow-origin')).to.equal('*');
      expect(res.headers.get('access-control-allow-methods')).to.contain('POST');
    });
  });

  describe('XMPP over BOSH', function () {
    it('SASL PLAIN, restart, bind and roster work with each request on the other node', async () => {
      const alice = await register(nodes[0]!, 'alice');
      const bob = await register(nodes[1]!, 'bob');
      await as(nodes[0]!, alice).post('/api/conversations').send({ with: bob.name }).expect(201);
      const c = client();
      await c.create();
      await c.login(alice.name, PASSWORD, 'desk');
      expect(c.jid).to.equal(`${alice.name}@${DOMAIN}/desk`);
      const roster = await c.send(`<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`);
      expect(roster.text).to.contain(`<item jid='${bob.name}@${DOMAIN}' name='${bob.name}' subscription='both'/>`);
    });

    it('a wrong password is a SASL failure, and the session can try again', async () => {
      const alice = await register(nodes[0]!, 'alice');
      const c = client();
      await c.create();
      const bad = await c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64(`\0${alice.name}\0wrong-password`)}</auth>`);
      expect(bad.text).to.contain('<failure xmlns=\'urn:ietf:params:xml:ns:xmpp-sasl\'><not-authorized/></failure>');
      const good = await c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64(`\0${alice.name}\0${PASSWORD}`)}</auth>`);
      expect(good.text).to.contain('<success');
    });

    it('an IQ it does not handle gets service-unavailable; ping gets a result', async () => {
      const { c } = await loggedIn();
      const v = await c.send(`<iq xmlns='jabber:client' type='get' id='v1' to='${DOMAIN}'><query xmlns='jabber:iq:version'/></iq>`);
      expect(v.text).to.contain("type='error' id='v1'");
      expect(v.text).to.contain('<service-unavailable');
      const p = await c.send(`<iq xmlns='jabber:client' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`);
      expect(p.text).to.contain("type='result' id='p1'");
    });

    it('a BOSH message reaches a long-poll client, and a long-poll message reaches the BOSH client, with receipts', async () => {
      const { c, user: alice } = await loggedIn('alice');
      const bob = await register(nodes[1]!, 'bob');
      await pollEvents(nodes[1]!, bob);
      await c.send(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`, {}, nodes[0]);
      // alice (BOSH) → bob (long-poll)
      await c.send(`<message xmlns='jabber:client' to='${bob.name}@${DOMAIN}' type='chat' id='hello-1'><body>hi bob</body><request xmlns='urn:xmpp:receipts'/></message>`);
      const got = await pollEvents(nodes[0]!, bob, 5);
      const m = got.find((e) => e.type === 'message');
      expect(m?.message).to.include({ text: 'hi bob', from: alice.name });
      // bob acknowledges by polling from his cursor: alice gets an XEP-0184 receipt.
      await pollEvents(nodes[1]!, bob, 0);
      let receipt = '';
      for (let i = 0; i < 5 && !receipt.includes('urn:xmpp:receipts'); i++) receipt += (await c.send()).text;
      expect(receipt).to.contain(`<received xmlns='urn:xmpp:receipts' id='hello-1'/>`);
      // bob (long-poll) → alice (BOSH)
      await as(nodes[1]!, bob).post(`/api/conversations/${m!.message.conversation}/messages`).send({ text: 'hi alice', client_id: 'lp-1' }).expect(201);
      let text = '';
      for (let i = 0; i < 5 && !text.includes('hi alice'); i++) text += (await c.send()).text;
      expect(text).to.contain(`from='${bob.name}@${DOMAIN}'`);
      expect(text).to.contain(`<stanza-id xmlns='urn:xmpp:sid:0' id='`);
      expect(text).to.contain('<body>hi alice</body>');
    });
    it('groups: a groupchat to CONVERSATION@groups.DOMAIN reaches the members and is reflected to the sender', async () => {
      const { c, user: alice } = await loggedIn('alice');
      const bob = await register(nodes[1]!, 'bob');
      const group = (await as(nodes[0]!, alice).post('/api/conversations').send({ title: 'team', members: [bob.name] }).expect(201)).body.conversation;
      await pollEvents(nodes[1]!, bob);
      await c.send(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`);
      let text = (await c.send(`<message xmlns='jabber:client' to='${group.id}@groups.${DOMAIN}' type='groupchat' id='g1'><body>hello team</body></message>`)).text;
      const got = await pollEvents(nodes[0]!, bob, 5);
      expect(got.find((e) => e.type === 'message')?.message).to.include({ text: 'hello team', from: alice.name, conversation: group.id });
      for (let i = 0; i < 3 && !text.includes('hello team'); i++) text += (await c.send()).text;
      // Written as the raw id (as before rooms), reflected from the room's lower-case JID (jids.ts).
      expect(text).to.contain(`type='groupchat' from='${roomJid(group.id, DOMAIN)}/${alice.name}'`);
      // A chat-type message to a group is refused.
      const wrong = await c.send(`<message xmlns='jabber:client' to='${group.id}@groups.${DOMAIN}' type='chat' id='g2'><body>x</body></message>`);
      expect(wrong.text).to.contain('<bad-request');
    });

    it('typing: a long-poll user typing reaches the BOSH client as an XEP-0085 chat state', async () => {
      const { c, user: alice } = await loggedIn('alice');
      const bob = await register(nodes[1]!, 'bob');
      const conv = (await as(nodes[1]!, bob).post('/api/conversations').send({ with: alice.name }).expect(201)).body.conversation;
      await sleep(1200); // bob's "online" reaches alice's stream (presence is coalesced for 1 s)
      // Initial presence takes what is in alice's stream (the new contact, bob online); typing is
      // not stored, so it reaches only a request that is held when it happens.
      await c.send(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p0'><ping xmlns='urn:xmpp:ping'/></iq>`);
      const held = c.send('', {}, nodes[0]);
      await sleep(300);
      await as(nodes[1]!, bob).post(`/api/conversations/${conv.id}/typing`).expect(204);
      let text = (await within(held, 3000, 'typing notification')).text;
      for (let i = 0; i < 2 && !text.includes('composing'); i++) text += (await c.send()).text;
      expect(text).to.contain(`from='${bob.name}@${DOMAIN}'`);
      expect(text).to.contain("<composing xmlns='http://jabber.org/protocol/chatstates'/>");
    });
  });

  describe('the rid window', function () {
    it('holds one request (hold=1) and answers the oldest when a second arrives', async () => {
      const { c } = await loggedIn();
      const first = c.send('', {}, nodes[0]);
      await sleep(300);
      const t0 = Date.now();
      const second = c.send(`<iq xmlns='jabber:client' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>`, {}, nodes[1]);
      const a = await within(first, 3000, 'the held request on the other node');
      expect(Date.now() - t0).to.be.below(2000);
      // The ping result rides on the oldest held request, answered through the other node.
      expect(a.text).to.contain("id='p2'");
      const [b] = await Promise.all([second, c.send()]); // a third request releases the second
      expect(b.status).to.equal(200);
    });

    it('processes rids in order: one arriving early waits for the gap', async () => {
      const { c } = await loggedIn('alice');
      const bob = await register(nodes[1]!, 'bob');
      await pollEvents(nodes[1]!, bob);
      const one = c.build(`<message xmlns='jabber:client' to='${bob.name}@${DOMAIN}' type='chat'><body>first</body></message>`);
      const two = c.build(`<message xmlns='jabber:client' to='${bob.name}@${DOMAIN}' type='chat'><body>second</body></message>`);
      const late = post(nodes[1]!, two.xml); // rid+1 before rid
      await sleep(300);
      const early = post(nodes[0]!, one.xml);
      await within(early, 5000, 'the gap rid, answered once the early one is processed and held');
      await Promise.all([within(late, 5000, 'the early rid'), c.send(`<iq xmlns='jabber:client' type='get' id='z'><ping xmlns='urn:xmpp:ping'/></iq>`)]);
      const events = await pollEvents(nodes[0]!, bob, 0);
      expect(events.filter((e) => e.type === 'message').map((e) => e.message.text)).to.deep.equal(['first', 'second']);
    });

    it('replays a repeated rid with the byte-identical response, from either node', async () => {
      const { c } = await loggedIn();
      const req = c.build(`<iq xmlns='jabber:client' type='get' id='rep'><ping xmlns='urn:xmpp:ping'/></iq>`);
      const first = await post(nodes[0]!, req.xml);
      const again = await post(nodes[1]!, req.xml);
      expect(first.text).to.contain("id='rep'");
      expect(again.text).to.equal(first.text);
    });

    it('a rid far out of the window terminates the session with item-not-found', async () => {
      const { c } = await loggedIn();
      const far = await c.send('', { rid: c.rid + 1000 });
      expect(far.body!.attrs).to.include({ type: 'terminate', condition: 'item-not-found' });
      const after = await c.send();
      expect(after.body!.attrs).to.include({ type: 'terminate', condition: 'item-not-found' });
    });

    it('a rid seen long ago and no longer buffered is item-not-found', async () => {
      const { c } = await loggedIn();
      const old = c.rid - 3;
      const a = await c.send('', { rid: old });
      expect(a.body!.attrs).to.include({ condition: 'item-not-found' });
    });
  });

  describe('overactivity, polling, inactivity, pause', function () {
    it('a new empty request while every slot is taken, within `polling` seconds, is a policy-violation', async () => {
      const { c } = await loggedIn();
      // hold=1, requests=2: r1 is held; an empty r2 right behind it has no business being there.
      const held = c.send('', {}, nodes[0]);
      await sleep(200);
      const r2 = await c.send('', {}, nodes[1]);
      expect(r2.body!.attrs).to.include({ type: 'terminate', condition: 'policy-violation' });
      const h = await within(held, 2000, 'the held request, released by the termination');
      expect(h.body!.attrs).to.include({ type: 'terminate' });
    });

    it('a request carrying data while one is held is fine (that is what hold is for)', async () => {
      const { c } = await loggedIn();
      const held = c.send('', {}, nodes[0]);
      await sleep(200);
      const r2 = c.send(`<iq xmlns='jabber:client' type='get' id='d'><ping xmlns='urn:xmpp:ping'/></iq>`, {}, nodes[1]);
      expect((await held).text).to.contain("id='d'");
      const r3 = await c.send(`<iq xmlns='jabber:client' type='get' id='e'><ping xmlns='urn:xmpp:ping'/></iq>`, {}, nodes[0]);
      expect([(await r2).text, r3.text].join()).to.contain("id='e'");
    });

    it('the rid window is `requests` wide: a rid beyond it is item-not-found', async () => {
      const { c } = await loggedIn();
      const a = await c.send('', { rid: c.rid + 2 });
      expect(a.body!.attrs).to.include({ type: 'terminate', condition: 'item-not-found' });
    });

    it('a polling session (hold=0) that polls faster than `polling` is a policy-violation', async () => {
      const c = client();
      await c.create({ hold: 0, wait: 0 });
      const a = await c.send();
      expect(a.body!.attrs.type).to.equal(undefined);
      const b = await c.send();
      expect(b.body!.attrs).to.include({ type: 'terminate', condition: 'policy-violation' });
    });

    it('pause answers the held requests at once; past the pause the session is gone (inactivity)', async () => {
      const { c } = await loggedIn();
      const held = c.send('', {}, nodes[0]);
      await sleep(200);
      const t0 = Date.now();
      const p = await c.send('', { pause: 1 }, nodes[1]);
      expect(p.status).to.equal(200);
      expect(p.stanzas).to.have.length(0);
      await within(held, 2000, 'held request answered by the pause');
      expect(Date.now() - t0).to.be.below(2000);
      await sleep(2500);
      const after = await c.send();
      expect(after.body!.attrs).to.include({ type: 'terminate', condition: 'item-not-found' });
    });

    it('a request within the pause resumes the session normally', async () => {
      const { c } = await loggedIn();
      await c.send('', { pause: 5 });
      await sleep(300);
      const a = await c.send(`<iq xmlns='jabber:client' type='get' id='back'><ping xmlns='urn:xmpp:ping'/></iq>`);
      expect(a.text).to.contain("id='back'");
    });
  });

  describe('acknowledgements', function () {
    it("with ack='1' a response says which later rid it has seen, and a lagging ack gets report/time", async () => {
      const user = await register(nodes[0]!, 'ack');
      const c = client();
      const created = await c.create({ ack: 1, wait: 5 });
      expect(created.body!.attrs.ack).to.be.a('string');
      await c.login(user.name, PASSWORD);
      const r1 = c.build();
      const held = post(nodes[0]!, r1.xml);
      await sleep(200);
      const r2 = c.build(`<iq xmlns='jabber:client' type='get' id='k'><ping xmlns='urn:xmpp:ping'/></iq>`);
      const h2 = post(nodes[1]!, r2.xml);
      const a1 = await held;
      expect(a1.body!.attrs.ack).to.equal(String(r2.rid)); // it has seen r2 already
      await sleep(1100);
      // The client claims it only got up to r1 - 1: r1's answer was sent over a second ago.
      const r3 = await post(nodes[0]!, c.build(`<iq xmlns='jabber:client' type='get' id='k3'><ping xmlns='urn:xmpp:ping'/></iq>`, { ack: r1.rid - 1 }).xml);
      const all = [await h2, r3];
      const reported = all.find((x) => x.body!.attrs.report);
      expect(reported, all.map((x) => x.text).join('\n')).to.not.equal(undefined);
      expect(reported!.body!.attrs.report).to.equal(String(r1.rid));
      expect(Number(reported!.body!.attrs.time)).to.be.at.least(1000);
    });
  });

  describe('terminate', function () {
    it("type='terminate' answers with type='terminate', releases the held request and ends the session", async () => {
      const { c } = await loggedIn();
      const held = c.send('', {}, nodes[0]);
      await sleep(200);
      const bye = await c.send(`<presence xmlns='jabber:client' type='unavailable'/>`, { type: 'terminate' }, nodes[1]);
      expect(bye.body!.attrs.type).to.equal('terminate');
      expect(bye.body!.attrs.condition).to.equal(undefined);
      const h = await within(held, 2000, 'held request released by terminate');
      expect(h.status).to.equal(200);
      const after = await c.send();
      expect(after.body!.attrs).to.include({ type: 'terminate', condition: 'item-not-found' });
    });
  });

  describe('bad input: each the protocol error, nobody else harmed', function () {
    let witness: BoshClient;
    before(async () => {
      witness = (await loggedIn('witness')).c;
    });
    afterEach(async () => {
      // Another session keeps working after every bad request.
      const ok = await witness.send(`<iq xmlns='jabber:client' type='get' id='w'><ping xmlns='urn:xmpp:ping'/></iq>`);
      expect(ok.text).to.contain("type='result' id='w'");
    });

    it('non-XML is bad-request', async () => {
      const a = await post(nodes[0]!, 'this is not xml');
      expect(a.status).to.equal(200);
      expect(a.body!.attrs).to.include({ type: 'terminate', condition: 'bad-request' });
    });
    it('a DOCTYPE with entities (billion laughs) is bad-request', async () => {
      const a = await post(nodes[0]!, `<?xml version='1.0'?><!DOCTYPE b [<!ENTITY a 'aaaa'><!ENTITY b '&a;&a;&a;'>]><body xmlns='${BOSH_NS}' rid='1'>&b;</body>`);
      expect(a.body!.attrs).to.include({ condition: 'bad-request' });
    });
    it('a <body/> in the wrong namespace is bad-request', async () => {
      const a = await post(nodes[1]!, `<body xmlns='urn:wrong' rid='10' to='${DOMAIN}' ver='1.6'/>`);
      expect(a.body!.attrs).to.include({ condition: 'bad-request' });
    });
    it('a missing rid is bad-request; a missing or unknown sid is item-not-found', async () => {
      const c = client();
      await c.create();
      const noRid = await post(nodes[0]!, `<body xmlns='${BOSH_NS}' sid='${c.sid}'/>`);
      expect(noRid.body!.attrs).to.include({ condition: 'bad-request' });
      const unknown = await post(nodes[0]!, `<body xmlns='${BOSH_NS}' sid='nosuchsession' rid='5'/>`);
      expect(unknown.body!.attrs).to.include({ condition: 'item-not-found' });
    });
    it('a huge body is refused with policy-violation before it is read', async () => {
      const big = `<body xmlns='${BOSH_NS}' rid='1' to='${DOMAIN}' ver='1.6'>${'<x/>'.repeat(300_000)}</body>`; // over 1 MiB
      const a = await post(nodes[0]!, big);
      expect(a.body!.attrs).to.include({ condition: 'policy-violation' });
    });
    // Found by npm run chaos: nginx answered one junk body of 70 KB with 502 ("writev() failed
    // (32: Broken pipe) while sending request to upstream"): the node answered and closed the
    // connection before the body was in. A body a little over the limit is now read to its end
    // (and dropped), and the proxy's connection stays usable.
    it('a body a little over the limit is refused with policy-violation and the connection stays usable', async () => {
      const big = `<body xmlns='${BOSH_NS}' rid='1' to='${DOMAIN}' ver='1.6'>${'<x/>'.repeat(20_000)}</body>`;
      const small = `<body xmlns='${BOSH_NS}' rid='1' sid='nosuchsid'/>`;
      const u = new URL(nodes[0]!);
      const request = (xml: string) => `POST /http-bind HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\nContent-Length: ${Buffer.byteLength(xml)}\r\n\r\n${xml}`;
      const answers = await within(
        new Promise<string[]>((resolve, reject) => {
          const sock = net.connect(Number(u.port), u.hostname, () => sock.write(request(big)));
          let got = '';
          const out: string[] = [];
          sock.on('data', (d: Buffer) => {
            got += d.toString();
            // One whole answer: its head, and as many bytes as its Content-Length says.
            const headEnd = got.indexOf('\r\n\r\n');
            const length = Number(/content-length: (\d+)/i.exec(got.slice(0, headEnd))?.[1]);
            if (headEnd < 0 || got.length < headEnd + 4 + length) return;
            out.push(got.slice(0, headEnd + 4 + length));
            got = got.slice(headEnd + 4 + length);
            if (out.length === 1) sock.write(request(small));
            else {
              sock.destroy();
              resolve(out);
            }
          });
          sock.on('error', reject);
          sock.on('close', () => resolve(out));
        }),
        5000,
        'two requests on one connection',
      );
      expect(answers, 'both answered on one connection').to.have.length(2);
      expect(answers[0]).to.contain("condition='policy-violation'");
      expect(answers[0]).not.to.match(/^Connection: close/im);
      expect(answers[1]).to.contain("condition='item-not-found'");
    });
    it('invalid UTF-8 is bad-request', async () => {
      const a = await post(nodes[0]!, Buffer.from([0x3c, 0x62, 0xff, 0xfe, 0x3e]));
      expect(a.body!.attrs).to.include({ condition: 'bad-request' });
    });
    it('stanzas before authentication end the stream with not-authorized', async () => {
      const c = client();
      await c.create();
      const a = await c.send(`<message xmlns='jabber:client' to='someone@${DOMAIN}' type='chat'><body>spam</body></message>`);
      expect(a.body!.attrs).to.include({ type: 'terminate', condition: 'remote-stream-error' });
      expect(a.text).to.contain("<not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    });
    it('a legacy client (no ver) gets HTTP error codes instead', async () => {
      const c = client();
      await c.create({ ver: '' }).catch(() => undefined);
      const legacy = await post(nodes[0]!, `<body xmlns='${BOSH_NS}' rid='9' to='${DOMAIN}' wait='5' hold='1'/>`);
      const sid = legacy.body!.attrs.sid!;
      const far = await post(nodes[1]!, `<body xmlns='${BOSH_NS}' sid='${sid}' rid='9999'/>`);
      expect(far.status).to.equal(404);
    });
  });
});
