import { expect } from 'chai';
import { conversationOfRoom, roomJid, roomLocal } from '../../../server/transports/bosh/jids.js';
import { accept, as, pollEvents, register, type TestUser } from '../../support/client.js';
import { requireServices } from '../../support/services.js';
import { startStack, type Stack } from '../../support/stack.js';
import { within } from './helpers.js';
import { connect as connectTo, inbox as inboxOf, loadStrophe, roundRobin } from './strophe-support.js';

const DOMAIN = 'localhost';
const MUC = 'http://jabber.org/protocol/muc';

describe('room JIDs (jids.ts)', () => {
  it('encode a mixed-case id as a lower-case localpart, one to one, read back whatever the case', () => {
    const id = 'gAb-9_ZzQ';
    const local = roomLocal(id);
    expect(local).to.equal('g.ab-9_.zz.q');
    expect(local).to.equal(local.toLowerCase());
    expect(conversationOfRoom(local)).to.equal(id);
    expect(conversationOfRoom(local.toUpperCase())).to.equal(id);
    expect(roomJid('gabc', DOMAIN)).to.equal(`gabc@groups.${DOMAIN}`);
    // Two ids that differ only in case get two localparts.
    expect(roomLocal('gAB')).to.not.equal(roomLocal('gab'));
    // A raw id as written before rooms (upper-case letters, no dot) is still read as itself.
    expect(conversationOfRoom('gAbC')).to.equal('gAbC');
    // Not an encoding: a dot before something other than a letter.
    expect(conversationOfRoom('g.1')).to.equal(null);
    expect(conversationOfRoom('g.')).to.equal(null);
  });
});

/* eslint-disable @typescript-eslint/no-explicit-any */
describe('MUC, disco and bookmarks over BOSH, with Strophe.js on two nodes', function () {
  this.timeout(60_000);
  let stack: Stack;
  let lb: Awaited<ReturnType<typeof roundRobin>>;
  let S: any;
  const conns: any[] = [];
  let alice: TestUser;
  let bob: TestUser;
  let mallory: TestUser;
  let group: { id: string; title: string };
  let room: string;
  let a: any;
  let b: any;
  let m: any;

  const url = (i = 0) => stack.nodes[i]!.url;

  const connect = (user: TestUser): Promise<any> => connectTo(S, lb.url, user, DOMAIN, undefined, conns);
  /** Every stanza of some kinds arriving at a connection (strophe-support.ts). */
  const inbox = (conn: any, names: string[]) => inboxOf(S, conn, names);

  /** Send an IQ; resolves with the answer, result or error. */
  function iq(conn: any, stanza: any): Promise<any> {
    return within(new Promise((res) => conn.sendIQ(stanza, res, res, 10_000)), 11_000, 'IQ answer');
  }
  const features = (q: any) => Array.from(q.getElementsByTagName('feature') as ArrayLike<any>).map((f: any) => f.getAttribute('var'));
  const identities = (q: any) => Array.from(q.getElementsByTagName('identity') as ArrayLike<any>).map((i: any) => `${i.getAttribute('category')}/${i.getAttribute('type')}`);
  const errorOf = (st: any) => (st.getAttribute('type') === 'error' ? st.getElementsByTagName('error')[0]?.firstChild?.localName ?? st.getElementsByTagName('error')[0]?.firstChild?.nodeName : null);
  const codes = (st: any) => Array.from(st.getElementsByTagName('status') as ArrayLike<any>).map((c: any) => c.getAttribute('code'));
  const bodyOf = (st: any) => st.getElementsByTagName('body')[0]?.textContent;
  const stanzaId = (st: any) => st.getElementsByTagName('stanza-id')[0];

  before(async function () {
    await requireServices(this);
    S = await loadStrophe();
    stack = await startStack({ backend: 'real', nodes: 2 });
    lb = await roundRobin(stack.nodes.map((n) => n.url));
    alice = await register(url(0), 'alice');
    bob = await register(url(1), 'bob');
    mallory = await register(url(0), 'mallory');
    const created = await as(url(0), alice).post('/api/conversations').send({ title: 'Team Room', members: [bob.name] }).expect(201);
    group = created.body.conversation;
    await accept(url(1), bob, group.id);
    room = roomJid(group.id, DOMAIN);
    a = await connect(alice);
    b = await connect(bob);
    m = await connect(mallory);
    for (const c of [a, b, m]) c.send(S.$pres());
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

  it('the room JID is lower-case, and the group id has upper-case letters to encode', () => {
    expect(room).to.equal(room.toLowerCase());
    expect(group.id).to.not.equal(group.id.toLowerCase());
  });

  it('disco: the server (server/im, disco#items with the MUC service), the service (conference, my groups), the room, my account (PEP, bookmarks)', async () => {
    const info = await iq(a, S.$iq({ type: 'get', to: DOMAIN }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(identities(info)).to.deep.equal(['server/im']);
    expect(features(info)).to.include.members(['http://jabber.org/protocol/disco#info', 'urn:xmpp:receipts', 'urn:xmpp:chat-markers:0']);

    const items = await iq(a, S.$iq({ type: 'get', to: DOMAIN }).c('query', { xmlns: 'http://jabber.org/protocol/disco#items' }));
    const service = Array.from(items.getElementsByTagName('item') as ArrayLike<any>).map((i: any) => i.getAttribute('jid'));
    expect(service).to.deep.equal([`groups.${DOMAIN}`, `upload.${DOMAIN}`]);
    const upload = await iq(a, S.$iq({ type: 'get', to: `upload.${DOMAIN}` }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(features(upload)).to.include('urn:xmpp:http:upload:0');

    const sinfo = await iq(a, S.$iq({ type: 'get', to: `groups.${DOMAIN}` }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(identities(sinfo)).to.deep.equal(['conference/text']);
    expect(features(sinfo)).to.include(MUC);

    const sitems = await iq(a, S.$iq({ type: 'get', to: `groups.${DOMAIN}` }).c('query', { xmlns: 'http://jabber.org/protocol/disco#items' }));
    const rooms = Array.from(sitems.getElementsByTagName('item') as ArrayLike<any>).map((i: any) => [i.getAttribute('jid'), i.getAttribute('name')]);
    expect(rooms).to.deep.equal([[room, 'Team Room']]);
    // mallory is in no group: the service lists nothing for her.
    const mitems = await iq(m, S.$iq({ type: 'get', to: `groups.${DOMAIN}` }).c('query', { xmlns: 'http://jabber.org/protocol/disco#items' }));
    expect(mitems.getElementsByTagName('item').length).to.equal(0);

    const rinfo = await iq(a, S.$iq({ type: 'get', to: room }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(rinfo.getAttribute('type')).to.equal('result');
    expect(rinfo.getAttribute('from')).to.equal(room);
    expect(identities(rinfo)).to.deep.equal(['conference/text']);
    expect(rinfo.getElementsByTagName('identity')[0].getAttribute('name')).to.equal('Team Room');
    expect(features(rinfo)).to.include.members([MUC, 'muc_persistent', 'muc_membersonly', 'muc_nonanonymous', 'urn:xmpp:sid:0']);

    const nick = await iq(a, S.$iq({ type: 'get', to: room }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info', node: 'x-roomuser-item' }));
    expect(nick.getElementsByTagName('identity')[0].getAttribute('name')).to.equal(alice.name);

    const acct = await iq(a, S.$iq({ type: 'get', to: `${alice.name}@${DOMAIN}` }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(identities(acct)).to.include('pubsub/pep');
    expect(features(acct)).to.include.members(['urn:xmpp:bookmarks:1#compat', 'http://jabber.org/protocol/pubsub#publish-options', 'urn:xmpp:mam:2']);
    // The registry reaches every entity: the server advertises carbons, rooms MAM.
    expect(features(info)).to.include('urn:xmpp:carbons:2');
    expect(features(rinfo)).to.include('urn:xmpp:mam:2');
  });

  it('bookmarks (XEP-0402) are my groups, with autojoin; publishing is acknowledged and changes nothing', async () => {
    const res = await iq(b, S.$iq({ type: 'get' }).c('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' }).c('items', { node: 'urn:xmpp:bookmarks:1' }));
    expect(res.getAttribute('type')).to.equal('result');
    const items = Array.from(res.getElementsByTagName('item') as ArrayLike<any>);
    expect(items.map((i: any) => i.getAttribute('id'))).to.deep.equal([room]);
    const conf = items[0].getElementsByTagName('conference')[0];
    expect(conf.getAttribute('autojoin')).to.equal('true');
    expect(conf.getAttribute('name')).to.equal('Team Room');
    expect(conf.getElementsByTagName('nick')[0].textContent).to.equal(bob.name);

    const pub = await iq(b, S.$iq({ type: 'set' }).c('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' })
      .c('publish', { node: 'urn:xmpp:bookmarks:1' }).c('item', { id: room }).c('conference', { xmlns: 'urn:xmpp:bookmarks:1', autojoin: 'false' }));
    expect(pub.getAttribute('type')).to.equal('result');
    const members = (await as(url(0), alice).get('/api/conversations').expect(200)).body.conversations.find((c: any) => c.id === group.id).members;
    expect(members).to.include(bob.name);

    const none = await iq(m, S.$iq({ type: 'get' }).c('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' }).c('items', { node: 'urn:xmpp:bookmarks:1' }));
    expect(none.getAttribute('type')).to.equal('result');
    expect(none.getElementsByTagName('item').length).to.equal(0);
  });

  it('entry: occupants, then self-presence with status 110, then history as delayed groupchat with stanza-id = JSON id, then the title as subject', async () => {
    const sent = (await as(url(1), bob).post(`/api/conversations/${group.id}/messages`).send({ text: 'before you came' }).expect(201)).body.message;
    const inA = inbox(a, ['presence', 'message']);
    a.send(S.$pres({ to: `${room}/${alice.name}` }).c('x', { xmlns: MUC }));
    const self = await inA.next((st) => st.localName === 'presence' && codes(st).includes('110'), 'self-presence');
    expect(self.getAttribute('from')).to.equal(`${room}/${alice.name}`);
    const item = self.getElementsByTagName('item')[0];
    expect(item.getAttribute('affiliation')).to.equal('owner');
    expect(item.getAttribute('role')).to.equal('moderator');
    const subject = await inA.next((st) => st.localName === 'message' && st.getElementsByTagName('subject').length > 0, 'subject');
    expect(subject.getElementsByTagName('subject')[0].textContent).to.equal('Team Room');
    expect(subject.getAttribute('from')).to.equal(room);
    // In order: bob's presence, self, history (delayed: a live copy may come too), subject last.
    const at = (st: any) => inA.all.indexOf(st);
    const bobPresence = inA.all.find((st) => st.localName === 'presence' && st.getAttribute('from') === `${room}/${bob.name}`);
    expect(bobPresence, 'bob is online and an occupant').to.not.equal(undefined);
    expect(bobPresence.getElementsByTagName('item')[0].getAttribute('jid')).to.equal(`${bob.name}@${DOMAIN}`);
    expect(at(bobPresence)).to.be.lessThan(at(self));
    const hist = inA.all.find((st) => st.localName === 'message' && bodyOf(st) === 'before you came' && st.getElementsByTagName('delay').length === 1);
    expect(hist, 'history on entry').to.not.equal(undefined);
    expect(at(self)).to.be.lessThan(at(hist));
    expect(at(hist)).to.be.lessThan(at(subject));
    expect(hist.getAttribute('type')).to.equal('groupchat');
    expect(hist.getAttribute('from')).to.equal(`${room}/${bob.name}`);
    expect(stanzaId(hist).getAttribute('id')).to.equal(sent.id);
    expect(stanzaId(hist).getAttribute('by')).to.equal(room);
  });

  it('a nick other than the Parley name is rewritten (status 210); maxstanzas 0 sends no history', async () => {
    const inB = inbox(b, ['presence', 'message']);
    b.send(S.$pres({ to: `${room}/Bobby` }).c('x', { xmlns: MUC }).c('history', { maxstanzas: '0' }));
    const self = await inB.next((st) => st.localName === 'presence' && codes(st).includes('110'), 'self-presence');
    expect(self.getAttribute('from')).to.equal(`${room}/${bob.name}`);
    expect(codes(self)).to.include('210');
    await inB.next((st) => st.localName === 'message' && st.getElementsByTagName('subject').length > 0, 'subject');
    expect(inB.got.filter((st) => st.localName === 'message' && bodyOf(st))).to.deep.equal([]);
  });

  it('groupchat both ways with the JSON API: the same message id in stanza-id and in history', async () => {
    const inA = inbox(a, ['message']);
    const inB = inbox(b, ['message']);
    a.send(S.$msg({ to: room, type: 'groupchat', id: 'muc-1' }).c('body').t('hello room'));
    const reflected = await inA.next((st) => bodyOf(st) === 'hello room', 'the reflection');
    expect(reflected.getAttribute('id')).to.equal('muc-1');
    expect(reflected.getAttribute('from')).to.equal(`${room}/${alice.name}`);
    const atB = await inB.next((st) => bodyOf(st) === 'hello room', 'bob gets it');
    expect(atB.getAttribute('type')).to.equal('groupchat');
    const history = (await as(url(1), bob).get(`/api/conversations/${group.id}/messages`).expect(200)).body.messages;
    const json = history.find((x: any) => x.text === 'hello room');
    expect(json.from).to.equal(alice.name);
    expect(stanzaId(reflected).getAttribute('id')).to.equal(json.id);
    expect(stanzaId(atB).getAttribute('id')).to.equal(json.id);

    const fromApi = (await as(url(1), bob).post(`/api/conversations/${group.id}/messages`).send({ text: 'from curl' }).expect(201)).body.message;
    const got = await inA.next((st) => bodyOf(st) === 'from curl', 'alice gets the JSON API message');
    expect(got.getAttribute('type')).to.equal('groupchat');
    expect(got.getAttribute('from')).to.equal(`${room}/${bob.name}`);
    expect(stanzaId(got).getAttribute('id')).to.equal(fromApi.id);
  });

  it('room JIDs are case-insensitive: an upper-cased JID finds the same room, for disco, entry and messages', async () => {
    const upper = room.toUpperCase();
    const info = await iq(a, S.$iq({ type: 'get', to: upper }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(info.getAttribute('type')).to.equal('result');
    expect(info.getElementsByTagName('identity')[0].getAttribute('name')).to.equal('Team Room');
    const inA = inbox(a, ['presence', 'message']);
    a.send(S.$pres({ to: `${upper}/${alice.name}` }).c('x', { xmlns: MUC }).c('history', { maxstanzas: '0' }));
    const self = await inA.next((st) => st.localName === 'presence' && codes(st).includes('110'), 'self-presence');
    expect(self.getAttribute('from')).to.equal(`${room}/${alice.name}`);
    a.send(S.$msg({ to: upper, type: 'groupchat', id: 'muc-upper' }).c('body').t('shouting'));
    await inA.next((st) => bodyOf(st) === 'shouting', 'the reflection');
    const history = (await as(url(0), alice).get(`/api/conversations/${group.id}/messages`).expect(200)).body.messages;
    expect(history.map((x: any) => x.text)).to.include('shouting');
  });

  it('member lists from Parley roles (muc#admin); changing them over XMPP is not allowed', async () => {
    const list = async (affiliation: string) => {
      const res = await iq(b, S.$iq({ type: 'get', to: room }).c('query', { xmlns: `${MUC}#admin` }).c('item', { affiliation }));
      expect(res.getAttribute('type')).to.equal('result');
      return Array.from(res.getElementsByTagName('item') as ArrayLike<any>).map((i: any) => i.getAttribute('jid'));
    };
    expect(await list('owner')).to.deep.equal([`${alice.name}@${DOMAIN}`]);
    expect(await list('member')).to.deep.equal([`${bob.name}@${DOMAIN}`]);
    expect(await list('admin')).to.deep.equal([]);
    const set = await iq(b, S.$iq({ type: 'set', to: room }).c('query', { xmlns: `${MUC}#admin` }).c('item', { affiliation: 'none', jid: `${alice.name}@${DOMAIN}` }));
    expect(errorOf(set)).to.equal('not-allowed');
  });

  it('a non-member is refused: registration-required on entry, forbidden for disco, member lists and groupchat', async () => {
    const inM = inbox(m, ['presence', 'message']);
    m.send(S.$pres({ to: `${room}/${mallory.name}` }).c('x', { xmlns: MUC }));
    const refused = await inM.next((st) => st.localName === 'presence' && st.getAttribute('type') === 'error', 'the presence error');
    expect(refused.getAttribute('from')).to.equal(`${room}/${mallory.name}`);
    expect(errorOf(refused)).to.equal('registration-required');
    const info = await iq(m, S.$iq({ type: 'get', to: room }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(errorOf(info)).to.equal('forbidden');
    const admin = await iq(m, S.$iq({ type: 'get', to: room }).c('query', { xmlns: `${MUC}#admin` }).c('item', { affiliation: 'member' }));
    expect(errorOf(admin)).to.equal('forbidden');
    m.send(S.$msg({ to: room, type: 'groupchat', id: 'intrude' }).c('body').t('let me in'));
    const err = await inM.next((st) => st.localName === 'message' && st.getAttribute('type') === 'error', 'the message error');
    expect(errorOf(err)).to.equal('forbidden');
    const history = (await as(url(0), alice).get(`/api/conversations/${group.id}/messages`).expect(200)).body.messages;
    expect(history.map((x: any) => x.text)).to.not.include('let me in');
    // A room that does not exist: item-not-found.
    const ghost = await iq(m, S.$iq({ type: 'get', to: roomJid('gNoSuchGroup', DOMAIN) }).c('query', { xmlns: 'http://jabber.org/protocol/disco#info' }));
    expect(errorOf(ghost)).to.equal('item-not-found');
  });

  it('leaving (presence unavailable) is answered with the unavailable self-presence and keeps the membership', async () => {
    const inB = inbox(b, ['presence']);
    b.send(S.$pres({ to: `${room}/${bob.name}`, type: 'unavailable' }));
    const gone = await inB.next((st) => st.getAttribute('type') === 'unavailable' && codes(st).includes('110'), 'unavailable self-presence');
    expect(gone.getAttribute('from')).to.equal(`${room}/${bob.name}`);
    const conv = (await as(url(0), alice).get('/api/conversations').expect(200)).body.conversations.find((c: any) => c.id === group.id);
    expect(conv.members).to.include(bob.name);
    // Still a member: bob's next poll of the JSON API sees new group messages.
    await pollEvents(url(1), bob);
    await as(url(0), alice).post(`/api/conversations/${group.id}/messages`).send({ text: 'still there?' }).expect(201);
    let seen = false;
    for (let i = 0; i < 5 && !seen; i++) seen = (await pollEvents(url(1), bob, 5)).some((e) => e.type === 'message' && e.message.text === 'still there?');
    expect(seen).to.equal(true);
  });

  it('a group created while connected is pushed as a new bookmark', async () => {
    const inB = inbox(b, ['message']);
    const created = (await as(url(0), alice).post('/api/conversations').send({ title: 'Second', members: [bob.name] }).expect(201)).body.conversation;
    const push = await inB.next((st) => st.getAttribute('type') === 'headline' && st.getElementsByTagName('conference').length > 0, 'the bookmark push');
    expect(push.getAttribute('from')).to.equal(`${bob.name}@${DOMAIN}`);
    expect(push.getElementsByTagName('item')[0].getAttribute('id')).to.equal(roomJid(created.id, DOMAIN));
    expect(push.getElementsByTagName('conference')[0].getAttribute('autojoin')).to.equal('true');
  });
});
