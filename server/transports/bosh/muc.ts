/**
 * XEP-0045 multi-user chat over Parley groups, and the other IQs a MUC client asks at login:
 * service discovery (disco.ts) and bookmarks (bookmarks.ts). Every group is a persistent,
 * members-only, non-anonymous room `LOCAL@groups.DOMAIN` (jids.ts); its members are the room's
 * members, its owner and admins its owner and admins, a member's nick is their Parley name.
 *
 * Entering (presence to `room/nick` with `<x xmlns='…/muc'/>`) costs no membership change: it
 * answers the online members' presences, the self-presence (status 110, and 210 when the nick
 * asked for is not the Parley name), recent history as delayed groupchat messages and the title
 * as subject. Leaving (presence unavailable) is answered with the unavailable self-presence and
 * leaves the group as it was. Groupchat messages in and out are the stanzas.ts mapping (sends
 * and message events), so a message from the JSON API reaches the room's occupants and the
 * `stanza-id` is the Parley message id.
 *
 * Stateless: nothing is kept per room in the session; the core answers who is a member.
 */
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import { AppError } from '../../core/errors.js';
import { HISTORY_MAX, type ConversationView } from '../../core/messaging.js';
import { bookmarkItems, isBookmarkNode, NS_PUBSUB } from './bookmarks.js';
import { DISCO_ITEMS, discoAnswer } from './disco.js';
import { conversationOfRoom, mucService, NS_MUC, NS_MUC_ADMIN, NS_MUC_OWNER, NS_MUC_USER, roomJid } from './jids.js';
import type { SessionState } from './session.js';
import { NS, parseJid, renderEvent, stanzaError } from './stanzas.js';
import { child, childElements, el, serialize, type XmlElement } from './xml.js';

const NS_VCARD = 'vcard-temp';

/** Messages of history on entry when the client does not say (XEP-0045 leaves it to the service). */
export const HISTORY_ON_ENTRY = 20;

type Affiliation = 'owner' | 'admin' | 'member';

function affiliationOf(view: ConversationView, name: string): Affiliation {
  if (view.owner === name) return 'owner';
  return view.admins?.includes(name) ? 'admin' : 'member';
}

function roleOf(a: Affiliation): 'moderator' | 'participant' {
  return a === 'member' ? 'participant' : 'moderator';
}

/** The answer to one stanza: stanzas to queue. */
type Out = XmlElement[];

/** MUC, disco and bookmarks for one node's BOSH sessions. */
export class Rooms {
  constructor(private readonly core: Core, private readonly domain: string) {}

  /**
   * Run the stanza if it is one of ours (returns true; its answers are queued), else false for
   * the rest of the dispatch. A core error thrown here becomes the stanza's error in xmpp.ts.
   */
  async handle(s: SessionState, st: XmlElement, me: Principal, jid: string): Promise<boolean> {
    if (st.ns !== NS.client) return false;
    const out = st.local === 'iq' ? await this.iq(st, me, jid) : st.local === 'presence' ? await this.presence(s, st, me, jid) : null;
    if (out === null) return false;
    for (const x of out) s.outq.push(serialize(x));
    return true;
  }

  private result(st: XmlElement, jid: string, ...children: XmlElement[]): XmlElement {
    return el('iq', { xmlns: NS.client, type: 'result', id: st.attrs.id, from: st.attrs.to, to: jid }, ...children);
  }

  private async iq(st: XmlElement, me: Principal, jid: string): Promise<Out | null> {
    const type = st.attrs.type;
    const payload = childElements(st)[0];
    if (st.attrs.id === undefined || (type !== 'get' && type !== 'set') || !payload) return null;
    const to = st.attrs.to;
    const error = (condition: string, kind = 'cancel') => [stanzaError(st, condition, kind, jid, this.domain)];
    if ((payload.ns === NS.discoInfo || payload.ns === DISCO_ITEMS) && payload.local === 'query') {
      if (type !== 'get') return error('bad-request', 'modify');
      const answer = await discoAnswer(this.core, me, this.domain, to, payload);
      return 'query' in answer ? [this.result(st, jid, answer.query)] : error(answer.condition);
    }
    const target = to === undefined ? null : parseJid(to);
    const mine = to === undefined || (target !== null && target.domain === this.domain && target.local.toLowerCase() === me.name && !target.resource);
    if (mine && payload.ns === NS_PUBSUB && payload.local === 'pubsub') return this.pubsub(st, payload, me, jid);
    if (!target || target.domain !== mucService(this.domain) || !target.local) return null;
    // To a room (or an occupant): look it up first, so a stranger learns nothing more.
    const conversation = conversationOfRoom(target.local);
    if (conversation === null) return error('item-not-found');
    const conv = await this.core.messaging.requireMember(conversation, me);
    if (conv.kind !== 'group') return error('item-not-found');
    if (payload.ns === NS.ping && payload.local === 'ping') {
      // XEP-0410 self-ping: a member is always an occupant as far as the service is concerned.
      return [this.result(st, jid)];
    }
    if (payload.ns === NS_MUC_ADMIN && payload.local === 'query') {
      if (type === 'set') return error('not-allowed'); // membership and roles are changed through the JSON API
      const [view] = await this.core.messaging.views(me, [conv.id]);
      const asked = childElements(payload, 'item', NS_MUC_ADMIN)[0];
      const affiliation = asked?.attrs.affiliation;
      const role = asked?.attrs.role;
      const items = (view?.members ?? [])
        .map((name) => ({ name, a: affiliationOf(view!, name) }))
        .filter(({ a }) => (affiliation !== undefined ? a === affiliation : role !== undefined ? roleOf(a) === role : true))
        .map(({ name, a }) => el('item', { xmlns: NS_MUC_ADMIN, affiliation: a, jid: `${name}@${this.domain}`, nick: name, role: roleOf(a) }));
      return [this.result(st, jid, el('query', { xmlns: NS_MUC_ADMIN }, ...items))];
    }
    if (payload.ns === NS_MUC_OWNER) return error('feature-not-implemented'); // no room configuration: it is the group's
    if (payload.ns === NS_VCARD && payload.local === 'vCard' && type === 'get' && !target.resource) {
      // The room's vCard (clients ask it for a room avatar): its name, no picture.
      const [view] = await this.core.messaging.views(me, [conv.id]);
      return [this.result(st, jid, el('vCard', { xmlns: NS_VCARD }, el('FN', {}, view?.title ?? '')))];
    }
    return null;
  }

  /** PEP on my own account: the bookmark nodes; publishing to them is acknowledged (groups are the bookmarks). */
  private async pubsub(st: XmlElement, pubsub: XmlElement, me: Principal, jid: string): Promise<Out | null> {
    const items = child(pubsub, 'items', NS_PUBSUB);
    if (st.attrs.type === 'get' && items && isBookmarkNode(items.attrs.node)) {
      return [this.result(st, jid, el('pubsub', { xmlns: NS_PUBSUB }, await bookmarkItems(this.core, me, this.domain, items.attrs.node)))];
    }
    const change = child(pubsub, 'publish', NS_PUBSUB) ?? child(pubsub, 'retract', NS_PUBSUB);
    if (st.attrs.type === 'set' && change && isBookmarkNode(change.attrs.node)) return [this.result(st, jid)];
    return null;
  }

  private async presence(s: SessionState, st: XmlElement, me: Principal, jid: string): Promise<Out | null> {
    const target = parseJid(st.attrs.to);
    if (!target || target.domain !== mucService(this.domain) || !target.local) return null;
    const type = st.attrs.type;
    if (type !== undefined && type !== 'unavailable') return []; // subscriptions, probes, errors: nothing to do
    const conversation = conversationOfRoom(target.local);
    const room = conversation === null ? null : roomJid(conversation, this.domain);
    const fail = (condition: string, kind: string) => [
      el('presence', { xmlns: NS.client, type: 'error', id: st.attrs.id, from: st.attrs.to, to: jid }, el('error', { type: kind }, el(condition, { xmlns: NS.stanzas }))),
    ];
    if (conversation === null || room === null) return fail('item-not-found', 'cancel');
    let view: ConversationView | undefined;
    try {
      const conv = await this.core.messaging.requireMember(conversation, me);
      if (conv.kind === 'group') [view] = await this.core.messaging.views(me, [conv.id]);
    } catch (err) {
      if (!(err instanceof AppError) || (err.status !== 403 && err.status !== 404)) throw err;
      if (type === 'unavailable') return [];
      // A members-only room refuses a non-member (XEP-0045 §7.2.7); one that is not there, item-not-found.
      return err.status === 403 ? fail('registration-required', 'auth') : fail('item-not-found', 'cancel');
    }
    if (!view) return type === 'unavailable' ? [] : fail('item-not-found', 'cancel');
    const mine = affiliationOf(view, me.name);
    const selfFrom = `${room}/${me.name}`;
    const self = (unavailable: boolean, ...codes: string[]) =>
      el(
        'presence',
        { xmlns: NS.client, from: selfFrom, to: jid, type: unavailable ? 'unavailable' : undefined, id: st.attrs.id },
        el('x', { xmlns: NS_MUC_USER }, el('item', { affiliation: mine, role: unavailable ? 'none' : roleOf(mine), jid }), ...codes.map((code) => el('status', { code }))),
      );
    if (type === 'unavailable') return [self(true, '110')];
    const join = child(st, 'x', NS_MUC);
    const renamed = target.resource !== me.name ? ['210'] : [];
    if (!join) return [self(false, '110', ...renamed)]; // a status change in a room I am in
    const out: Out = [];
    const online = new Set((await this.core.contacts.of(me)).filter((c) => c.online).map((c) => c.name));
    for (const name of view.members) {
      if (name === me.name || !online.has(name)) continue;
      const a = affiliationOf(view, name);
      out.push(el('presence', { xmlns: NS.client, from: `${room}/${name}`, to: jid }, el('x', { xmlns: NS_MUC_USER }, el('item', { affiliation: a, role: roleOf(a), jid: `${name}@${this.domain}` }))));
    }
    out.push(self(false, '100', '110', ...renamed));
    out.push(...(await this.history(s, st, me, jid, view)));
    out.push(el('message', { xmlns: NS.client, type: 'groupchat', from: room, to: jid, id: `subject-${view.id}` }, el('subject', {}, view.title ?? '')));
    return out;
  }

  /** Recent messages as delayed groupchat (XEP-0045 §7.2.15), as many as `<history maxstanzas>` asks (default 20, at most 200). */
  private async history(s: SessionState, st: XmlElement, me: Principal, jid: string, view: ConversationView): Promise<Out> {
    const asked = child(child(st, 'x', NS_MUC) ?? st, 'history', NS_MUC)?.attrs.maxstanzas;
    const max = asked !== undefined && /^\d{1,6}$/.test(asked) ? Math.min(Number(asked), HISTORY_MAX) : HISTORY_ON_ENTRY;
    if (max === 0) return [];
    const messages = await this.core.messaging.history(me, view.id, undefined, max);
    const ctx = {
      domain: this.domain,
      me: jid,
      myName: me.name,
      kindOf: () => 'group' as const,
      peerOf: () => undefined,
      // Every history message is marked delayed, however recent.
      now: Number.POSITIVE_INFINITY,
    };
    return messages.flatMap((m) => renderEvent({ type: 'message', message: m }, s, ctx));
  }
}
