/**
 * The XMPP subset Parley speaks over BOSH, both ways: stream events (core/events.ts) rendered
 * as stanzas, and incoming stanzas parsed into commands for the core. Pure functions; the
 * manager does the I/O. Anything outside the subset becomes an explicit error or is ignored, as
 * RFC 6120/6121 prescribe for the stanza kind.
 */
import type { StreamEvent } from '../../core/events.js';
import { bookmarkPush } from './bookmarks.js';
import { conversationOfRoom, mucService, roomJid } from './jids.js';
import { child, childElements, el, textOf, type XmlElement } from './xml.js';
import { settle, rememberSeen, type SessionState } from './session.js';
import { parseChange, renderChange, replyElement, replyRef, type ChangeCommand } from './corrections.js';

/** Namespaces of the subset. */
export const NS = {
  client: 'jabber:client',
  stream: 'http://etherx.jabber.org/streams',
  sasl: 'urn:ietf:params:xml:ns:xmpp-sasl',
  bind: 'urn:ietf:params:xml:ns:xmpp-bind',
  session: 'urn:ietf:params:xml:ns:xmpp-session',
  stanzas: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  roster: 'jabber:iq:roster',
  ping: 'urn:xmpp:ping',
  discoInfo: 'http://jabber.org/protocol/disco#info',
  receipts: 'urn:xmpp:receipts',
  markers: 'urn:xmpp:chat-markers:0',
  chatstates: 'http://jabber.org/protocol/chatstates',
  delay: 'urn:xmpp:delay',
  sid: 'urn:xmpp:sid:0',
  oob: 'jabber:x:oob',
} as const;

/** A JID split into parts; the domain lower-cased, the local part as written (jids.ts reads room localparts). */
export interface Jid {
  local: string;
  domain: string;
  resource: string;
}

/** Parse a JID; null when malformed. */
export function parseJid(s: string | undefined): Jid | null {
  if (!s || s.length > 3071) return null;
  const slash = s.indexOf('/');
  const bare = slash >= 0 ? s.slice(0, slash) : s;
  const resource = slash >= 0 ? s.slice(slash + 1) : '';
  const at = bare.indexOf('@');
  const local = at >= 0 ? bare.slice(0, at) : '';
  const domain = at >= 0 ? bare.slice(at + 1) : bare;
  if (!domain || (at >= 0 && !local) || /[\s@/]/.test(domain) || /[\s"&'/:<>@]/.test(local)) return null;
  return { local, domain: domain.toLowerCase(), resource };
}

// ---------------------------------------------------------------------------------------------
// Events → stanzas

/** A message's attachment link (the view's attachment is the stored one: an object with a url). */
function attachmentUrl(attachment: unknown): string | undefined {
  const url = typeof attachment === 'object' && attachment !== null ? (attachment as { url?: unknown }).url : undefined;
  return typeof url === 'string' ? url : undefined;
}

/** What rendering needs besides the event. */
export interface RenderContext {
  domain: string;
  /** The session's full JID. */
  me: string;
  myName: string;
  /** Conversation kind, resolved by the caller beforehand (undefined: unknown, treated as direct). */
  kindOf: (conversation: string) => 'direct' | 'group' | undefined;
  /** The other member of a direct conversation, when the event does not say (own messages, receipts). */
  peerOf: (conversation: string) => string | undefined;
  now: number;
}

/** The resource under which contacts appear (presence needs a full JID). */
export const CONTACT_RESOURCE = 'parley';
/** 10 s: a message older than this when rendered is marked delayed (XEP-0203), e.g. offline delivery. */
const DELAY_MARK_MS = 10_000;

function groupJid(conversation: string, ctx: RenderContext): string {
  return roomJid(conversation, ctx.domain);
}

/**
 * Render one event for this session; mutates `s` (receipt bookkeeping, seen ids). Returns the
 * stanzas to send (possibly none: own direct messages, unknown event types).
 */
export function renderEvent(ev: StreamEvent, s: SessionState, ctx: RenderContext): XmlElement[] {
  switch (ev.type) {
    case 'message': {
      const m = ev.message;
      const group = ctx.kindOf(m.conversation) === 'group';
      // Own direct messages are not echoed (no carbons in the subset); MUC reflects own group messages.
      if (!group && m.from === ctx.myName) return [];
      const id = m.client_id || m.id;
      rememberSeen(s, id, m.conversation, m.seq);
      const url = attachmentUrl(m.attachment);
      const text = m.text || (url ?? '');
      const sent = Date.parse(m.sent_at);
      return [
        el(
          'message',
          {
            xmlns: NS.client,
            type: group ? 'groupchat' : 'chat',
            from: group ? `${groupJid(m.conversation, ctx)}/${m.from}` : `${m.from}@${ctx.domain}`,
            to: ctx.me,
            id,
          },
          el('body', {}, text),
          replyElement(m, ctx),
          url !== undefined ? el('x', { xmlns: NS.oob }, el('url', {}, url)) : null,
          el('markable', { xmlns: NS.markers }),
          el('stanza-id', { xmlns: NS.sid, id: m.id, by: group ? groupJid(m.conversation, ctx) : `${ctx.myName}@${ctx.domain}` }),
          Number.isFinite(sent) && ctx.now - sent > DELAY_MARK_MS ? el('delay', { xmlns: NS.delay, from: ctx.domain, stamp: new Date(sent).toISOString() }) : null,
        ),
      ];
    }
    case 'receipt': {
      if (ev.user === ctx.myName) return [];
      const { received, displayed } = settle(s, ev.conversation, ev.status, ev.up_to);
      const group = ctx.kindOf(ev.conversation) === 'group';
      const from = group ? `${groupJid(ev.conversation, ctx)}/${ev.user}` : `${ev.user}@${ctx.domain}`;
      const type = group ? 'groupchat' : 'chat';
      const out = received.map((id) => el('message', { xmlns: NS.client, from, to: ctx.me, type }, el('received', { xmlns: NS.receipts, id })));
      if (displayed) out.push(el('message', { xmlns: NS.client, from, to: ctx.me, type }, el('displayed', { xmlns: NS.markers, id: displayed })));
      return out;
    }
    case 'presence': {
      if (ev.user === ctx.myName) return [];
      return [el('presence', { xmlns: NS.client, from: `${ev.user}@${ctx.domain}/${CONTACT_RESOURCE}`, to: ctx.me, type: ev.online ? undefined : 'unavailable' })];
    }
    case 'typing': {
      if (ev.user === ctx.myName) return [];
      const group = ctx.kindOf(ev.conversation) === 'group';
      return [
        el(
          'message',
          { xmlns: NS.client, type: group ? 'groupchat' : 'chat', from: group ? `${groupJid(ev.conversation, ctx)}/${ev.user}` : `${ev.user}@${ctx.domain}`, to: ctx.me },
          el('composing', { xmlns: NS.chatstates }),
        ),
      ];
    }
    case 'conversation': {
      const c = ev.conversation;
      if (c.kind === 'group') {
        // A group created with me or that I was added to: a new bookmark, so the client joins it.
        const fresh = ev.change === 'created' || ev.change === 'member_added';
        return fresh && c.members.includes(ctx.myName) ? [bookmarkPush(c.id, c.title, ctx.myName, ctx.domain, ctx.me)] : [];
      }
      if (c.kind !== 'direct') return [];
      const peer = c.members.find((n) => n !== ctx.myName);
      if (!peer) return [];
      // A new direct conversation is a new contact: a roster push (RFC 6121 §2.1.6).
      return [el('iq', { xmlns: NS.client, type: 'set', to: ctx.me, id: `push-${c.id}` }, el('query', { xmlns: NS.roster }, rosterItem(peer, ctx.domain)))];
    }
    case 'message_changed':
      return renderChange(ev, ctx);
    default:
      return [];
  }
}

/** One roster item: every contact is mutual (subscription both), as sharing a conversation is. */
export function rosterItem(name: string, domain: string): XmlElement {
  return el('item', { jid: `${name}@${domain}`, name, subscription: 'both' });
}

// ---------------------------------------------------------------------------------------------
// Stanzas → commands

/** What an incoming stanza asks of the core. */
export type Command =
  | { kind: 'auth'; mechanism: string; data: string }
  | { kind: 'bind'; id: string; resource: string }
  | { kind: 'session'; id: string }
  | { kind: 'roster'; id: string }
  | { kind: 'ping'; id: string; to: string | undefined }
  | { kind: 'disco'; id: string; to: string | undefined }
  /** A message with text to a user (direct) or a group. */
  | { kind: 'send'; to: Target; text: string; id: string | undefined; receipt: boolean; markable: boolean; replyTo?: string }
  /** Edits, retractions, reactions (corrections.ts). */
  | ChangeCommand
  | { kind: 'typing'; to: Target }
  | { kind: 'displayed'; to: Target; id: string }
  | { kind: 'presence'; available: boolean }
  /** Answer with this stanza error (service-unavailable etc.). */
  | { kind: 'error'; stanza: XmlElement; condition: string; type: 'cancel' | 'modify' | 'auth' }
  | { kind: 'ignore' };

/** Where a message goes: a user's direct conversation or a group conversation. */
export type Target = { kind: 'user'; name: string } | { kind: 'group'; conversation: string };

function targetOf(to: string | undefined, domain: string): Target | null {
  const j = parseJid(to);
  if (!j || !j.local) return null;
  // User names are case-insensitive in Parley; room localparts encode the mixed-case ids (jids.ts).
  if (j.domain === domain) return { kind: 'user', name: j.local.toLowerCase() };
  if (j.domain === mucService(domain)) {
    const conversation = conversationOfRoom(j.local);
    return conversation === null ? null : { kind: 'group', conversation };
  }
  return null;
}

/** Turn one stanza of a client body into a command. */
export function parseStanza(st: XmlElement, domain: string): Command {
  if (st.ns === NS.sasl && st.local === 'auth') {
    return { kind: 'auth', mechanism: st.attrs.mechanism ?? '', data: textOf(st).trim() };
  }
  if (st.ns !== NS.client) return { kind: 'error', stanza: st, condition: 'bad-request', type: 'modify' };
  const id = st.attrs.id;
  const type = st.attrs.type;
  switch (st.local) {
    case 'iq': {
      if (type === 'result' || type === 'error') return { kind: 'ignore' };
      const payload = childElements(st)[0];
      if (id === undefined || (type !== 'get' && type !== 'set') || !payload) {
        return { kind: 'error', stanza: st, condition: 'bad-request', type: 'modify' };
      }
      if (type === 'set' && payload.ns === NS.bind && payload.local === 'bind') {
        return { kind: 'bind', id, resource: textOf(child(payload, 'resource', NS.bind)).trim() };
      }
      if (type === 'set' && payload.ns === NS.session && payload.local === 'session') return { kind: 'session', id };
      if (type === 'get' && payload.ns === NS.roster && payload.local === 'query') return { kind: 'roster', id };
      if (type === 'get' && payload.ns === NS.ping && payload.local === 'ping') return { kind: 'ping', id, to: st.attrs.to };
      if (type === 'get' && payload.ns === NS.discoInfo && payload.local === 'query' && !payload.attrs.node) return { kind: 'disco', id, to: st.attrs.to };
      // Every other IQ: RFC 6120 §8.4 wants an answer, and service-unavailable is the honest one.
      return { kind: 'error', stanza: st, condition: 'service-unavailable', type: 'cancel' };
    }
    case 'message': {
      if (type === 'error') return { kind: 'ignore' };
      const to = targetOf(st.attrs.to, domain);
      if (!to) return { kind: 'error', stanza: st, condition: 'service-unavailable', type: 'cancel' };
      if (to.kind === 'group' && type !== 'groupchat') return { kind: 'error', stanza: st, condition: 'bad-request', type: 'modify' };
      const change = parseChange(st, to);
      if (change) return change;
      const body = child(st, 'body', NS.client);
      if (body) {
        return {
          kind: 'send',
          to,
          text: textOf(body),
          id,
          receipt: !!child(st, 'request', NS.receipts),
          markable: !!child(st, 'markable', NS.markers),
          // only when given: a plain send stays as it was
          ...(replyRef(st) !== undefined ? { replyTo: replyRef(st) } : {}),
        };
      }
      const displayed = child(st, 'displayed', NS.markers);
      if (displayed?.attrs.id) return { kind: 'displayed', to, id: displayed.attrs.id };
      if (child(st, 'composing', NS.chatstates)) return { kind: 'typing', to };
      // Receipts from the client (<received/>) and other chat states: delivery is known from acks.
      return { kind: 'ignore' };
    }
    case 'presence': {
      if (st.attrs.to) return { kind: 'ignore' }; // directed presence, subscriptions: contacts are implicit
      if (type === undefined) return { kind: 'presence', available: true };
      if (type === 'unavailable') return { kind: 'presence', available: false };
      return { kind: 'ignore' };
    }
    default:
      return { kind: 'error', stanza: st, condition: 'bad-request', type: 'modify' };
  }
}

/** The error reply to a stanza (RFC 6120 §8.3): from/to swapped, type error, the condition inside. */
export function stanzaError(st: XmlElement, condition: string, type: string, me: string, domain: string): XmlElement {
  return el(
    st.local === 'iq' || st.local === 'message' || st.local === 'presence' ? st.local : 'message',
    { xmlns: NS.client, type: 'error', id: st.attrs.id, from: st.attrs.to ?? domain, to: me || undefined },
    el('error', { type }, el(condition, { xmlns: NS.stanzas })),
  );
}

/** Decode SASL PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd. Null when malformed. */
export function decodePlain(data: string, domain: string): { name: string; password: string } | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(data) || data.length % 4 !== 0 || data.length > 1400) return null;
  const parts = Buffer.from(data, 'base64').toString('utf8').split('\0');
  if (parts.length !== 3) return null;
  const [authzid, authcid, password] = parts as [string, string, string];
  const name = authcid.includes('@') ? authcid.slice(0, authcid.indexOf('@')) : authcid;
  if (authcid.includes('@') && authcid.slice(authcid.indexOf('@') + 1).toLowerCase() !== domain) return null;
  if (authzid && authzid.toLowerCase() !== name.toLowerCase() && authzid.toLowerCase() !== `${name}@${domain}`.toLowerCase()) return null;
  if (!name || !password) return null;
  return { name: name.toLowerCase(), password };
}

/** Stream features before authentication: SASL PLAIN only. */
export function preAuthFeatures(): XmlElement {
  return el('stream:features', {}, el('mechanisms', { xmlns: NS.sasl }, el('mechanism', {}, 'PLAIN')));
}

/** Stream features after the restart: bind, and session marked optional (RFC 6121 drops it). */
export function postAuthFeatures(): XmlElement {
  return el('stream:features', {}, el('bind', { xmlns: NS.bind }), el('session', { xmlns: NS.session }, el('optional', {})));
}
