import { expect } from 'chai';
import { createSession, negotiate, track, type Negotiated } from '../../../server/transports/bosh/session.js';
import { decodePlain, parseJid, parseStanza, renderEvent, stanzaError, type RenderContext } from '../../../server/transports/bosh/stanzas.js';
import { parseXml, serialize } from '../../../server/transports/bosh/xml.js';

const D = 'chat.example';
const ctx = (kinds: Record<string, 'direct' | 'group'> = {}): RenderContext => ({
  domain: D, me: `bob@${D}/web`, myName: 'bob', kindOf: (c) => kinds[c], peerOf: () => undefined, now: Date.parse('2026-01-01T00:00:05Z'),
});
const fresh = () => createSession('s', 1, negotiate({ ver: '1.6' }) as Negotiated, 0);
const st = (xml: string) => parseXml(xml.replace('<iq ', "<iq xmlns='jabber:client' ").replace('<message ', "<message xmlns='jabber:client' ").replace('<presence', "<presence xmlns='jabber:client'"));

describe('XMPP subset', function () {
  it('parses JIDs, lower-casing the domain and keeping the local part (group ids are case-sensitive)', function () {
    expect(parseJid('Alice@Chat.Example/Phone')).to.deep.equal({ local: 'Alice', domain: 'chat.example', resource: 'Phone' });
    expect(parseJid('chat.example')).to.deep.equal({ local: '', domain: 'chat.example', resource: '' });
    expect(parseJid('@x')).to.equal(null);
    expect(parseJid('a b@x')).to.equal(null);
  });

  it('decodes SASL PLAIN and rejects malformed or mismatched identities', function () {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    expect(decodePlain(b64('\0Alice\0secret-pw'), D)).to.deep.equal({ name: 'alice', password: 'secret-pw' });
    expect(decodePlain(b64(`alice@${D}\0alice\0pw`), D)).to.deep.equal({ name: 'alice', password: 'pw' });
    expect(decodePlain(b64('mallory\0alice\0pw'), D)).to.equal(null);
    expect(decodePlain(b64('\0alice@other.example\0pw'), D)).to.equal(null);
    expect(decodePlain('not base64!', D)).to.equal(null);
    expect(decodePlain(b64('alice-no-nul'), D)).to.equal(null);
  });

  describe('incoming stanzas', function () {
    it('a chat message to bob@DOMAIN is a send in the direct conversation, with its id, receipt and marker requests', function () {
      const c = parseStanza(st(`<message to='bob@${D}' type='chat' id='m1'><body>hi</body><request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/></message>`), D);
      expect(c).to.deep.equal({ kind: 'send', to: { kind: 'user', name: 'bob' }, text: 'hi', id: 'm1', receipt: true, markable: true });
    });
    it('a user JID is case-insensitive, a group JID keeps the case of the conversation id', function () {
      expect(parseStanza(st(`<message to='Bob@${D.toUpperCase()}' type='chat'><body>x</body></message>`), D)).to.deep.include({ to: { kind: 'user', name: 'bob' } });
      expect(parseStanza(st(`<message to='gAbC@groups.${D}' type='groupchat'><body>x</body></message>`), D)).to.deep.include({ to: { kind: 'group', conversation: 'gAbC' } });
    });
    it('a groupchat message goes to CONVERSATION@groups.DOMAIN; a chat to a group is a bad request', function () {
      expect(parseStanza(st(`<message to='c42@groups.${D}' type='groupchat'><body>yo</body></message>`), D)).to.include({ kind: 'send' });
      expect(parseStanza(st(`<message to='c42@groups.${D}' type='chat'><body>yo</body></message>`), D)).to.include({ kind: 'error', condition: 'bad-request' });
    });
    it('a message to another domain is service-unavailable', function () {
      expect(parseStanza(st(`<message to='x@elsewhere.org' type='chat'><body>a</body></message>`), D)).to.include({ kind: 'error', condition: 'service-unavailable' });
    });
    it('displayed markers, chat states, bind, roster, ping and presence', function () {
      expect(parseStanza(st(`<message to='alice@${D}'><displayed xmlns='urn:xmpp:chat-markers:0' id='x9'/></message>`), D)).to.deep.equal({ kind: 'displayed', to: { kind: 'user', name: 'alice' }, id: 'x9' });
      expect(parseStanza(st(`<message to='alice@${D}' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`), D)).to.include({ kind: 'typing' });
      expect(parseStanza(st(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>web</resource></bind></iq>`), D)).to.deep.equal({ kind: 'bind', id: 'b1', resource: 'web' });
      expect(parseStanza(st(`<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>`), D)).to.deep.equal({ kind: 'roster', id: 'r1' });
      expect(parseStanza(st(`<iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>`), D)).to.include({ kind: 'ping' });
      expect(parseStanza(st(`<presence/>`), D)).to.deep.equal({ kind: 'presence', available: true });
      expect(parseStanza(st(`<presence type='unavailable'/>`), D)).to.deep.equal({ kind: 'presence', available: false });
    });
    it('an IQ it does not handle gets service-unavailable, with from/to swapped', function () {
      const iq = st(`<iq type='get' id='v1' to='${D}'><query xmlns='jabber:iq:version'/></iq>`);
      const c = parseStanza(iq, D);
      expect(c).to.include({ kind: 'error', condition: 'service-unavailable' });
      expect(serialize(stanzaError(iq, 'service-unavailable', 'cancel', `bob@${D}/web`, D))).to.equal(
        `<iq xmlns='jabber:client' type='error' id='v1' from='${D}' to='bob@${D}/web'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
      );
    });
    it('a stanza in the wrong namespace is a bad request', function () {
      expect(parseStanza(parseXml(`<message xmlns='urn:evil' to='a@b'/>`), D)).to.include({ kind: 'error', condition: 'bad-request' });
    });
  });

  describe('stream events as stanzas', function () {
    const msg = { id: 'M1', conversation: 'c1', seq: 7, from: 'alice', text: 'hello <3', client_id: 'cid-1', sent_at: '2026-01-01T00:00:04Z' };
    it("alice's direct message to bob becomes a chat message from alice@DOMAIN whose id is her client_id", function () {
      const s = fresh();
      const [out] = renderEvent({ type: 'message', message: msg }, s, ctx({ c1: 'direct' }));
      expect(serialize(out!)).to.equal(
        `<message xmlns='jabber:client' type='chat' from='alice@${D}' to='bob@${D}/web' id='cid-1'><body>hello &lt;3</body><markable xmlns='urn:xmpp:chat-markers:0'/><stanza-id xmlns='urn:xmpp:sid:0' id='M1' by='bob@${D}'/></message>`,
      );
      expect(s.seen).to.deep.equal([['cid-1', 'c1', 7]]);
    });
    it('an old message carries a delay stamp; a group message comes from the room with the sender as nick', function () {
      const s = fresh();
      const [out] = renderEvent({ type: 'message', message: { ...msg, sent_at: '2025-12-31T00:00:00Z' } }, s, ctx({ c1: 'group' }));
      const x = serialize(out!);
      expect(x).to.contain(`type='groupchat' from='c1@groups.${D}/alice'`);
      expect(x).to.contain(`<delay xmlns='urn:xmpp:delay' from='${D}' stamp='2025-12-31T00:00:00.000Z'/>`);
    });
    it('own direct messages are not echoed', function () {
      expect(renderEvent({ type: 'message', message: { ...msg, from: 'bob' } }, fresh(), ctx({ c1: 'direct' }))).to.deep.equal([]);
    });
    it('a delivered receipt becomes XEP-0184 <received/> for each message that asked; read becomes one XEP-0333 <displayed/>', function () {
      const s = fresh();
      track(s, { conversation: 'c1', seq: 3, id: 'a', receipt: true, markable: true });
      track(s, { conversation: 'c1', seq: 4, id: 'b', receipt: true, markable: true });
      const rec = renderEvent({ type: 'receipt', conversation: 'c1', user: 'alice', status: 'delivered', up_to: 4, at: '2026-01-01T00:00:05Z' }, s, ctx({ c1: 'direct' })).map(serialize);
      expect(rec).to.deep.equal([
        `<message xmlns='jabber:client' from='alice@${D}' to='bob@${D}/web' type='chat'><received xmlns='urn:xmpp:receipts' id='a'/></message>`,
        `<message xmlns='jabber:client' from='alice@${D}' to='bob@${D}/web' type='chat'><received xmlns='urn:xmpp:receipts' id='b'/></message>`,
      ]);
      const read = renderEvent({ type: 'receipt', conversation: 'c1', user: 'alice', status: 'read', up_to: 4, at: '2026-01-01T00:00:06Z' }, s, ctx({ c1: 'direct' })).map(serialize);
      expect(read).to.deep.equal([`<message xmlns='jabber:client' from='alice@${D}' to='bob@${D}/web' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='b'/></message>`]);
    });
    it('presence and typing', function () {
      expect(serialize(renderEvent({ type: 'presence', user: 'alice', online: false, last_seen: '2026-01-01T00:00:07Z' }, fresh(), ctx())[0]!)).to.equal(
        `<presence xmlns='jabber:client' from='alice@${D}/parley' to='bob@${D}/web' type='unavailable'/>`,
      );
      expect(serialize(renderEvent({ type: 'typing', conversation: 'c1', user: 'alice', at: '2026-01-01T00:00:08Z' }, fresh(), ctx({ c1: 'direct' }))[0]!)).to.contain(
        `<composing xmlns='http://jabber.org/protocol/chatstates'/>`,
      );
    });
  });
});
