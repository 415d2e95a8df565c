/**
 * The XMPP side of a BOSH session: the stanzas of a request run against the core (SASL, bind,
 * roster, presence, messages, chat states, markers, IQs), and stream events rendered as stanzas
 * for the session. Works on the session state it is given, under the session lock the binding
 * holds; what it answers goes to the session's out-queue.
 */
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import { AppError } from '../../core/errors.js';
import type { StreamEvent } from '../../core/events.js';
import { handleCarbons, sentCarbon, sentHere, wantsCarbon } from './carbons.js';
import { serverInfo } from './disco.js';
import type { IqHandler } from './iq-context.js';
import { conversationOfRoom, roomJid } from './jids.js';
import { handleMam } from './mam.js';
import { parseBlocking, runBlocking } from './blocking.js';
import { Rooms } from './muc.js';
import { deviceOf, track, type SessionState } from './session.js';
import {
  CONTACT_RESOURCE, decodePlain, NS, parseStanza, renderEvent, rosterItem, stanzaError, type Command, type Target,
} from './stanzas.js';
import { handleUploadSlot, sendUploaded } from './upload.js';
import { handlePep, handleVcard } from './vcard.js';
import { el, serialize, type XmlElement } from './xml.js';
import { resolveRef, runChange } from './corrections.js';

/**
 * Failed SASL attempts per session before the stream ends (RFC 6120 §6.4.5: allow a
 * configurable number of retries, at least 2 and at most 5, then a policy-violation stream error).
 */
export const MAX_AUTH_FAILURES = 3;
/** Conversation kinds never change: cache them per node (bounded). */
const KIND_CACHE_MAX = 50_000;
/** Direct conversation ids per (user, peer), per node (bounded). */
const DIRECT_CACHE_MAX = 50_000;

/** Where a request came from (the router knows HTTP; the manager only this). */
export interface Origin {
  /** The client's address, for the per-address limits (session creation, SASL). */
  address: string;
  /** This server's URL as the request reached it (`https://HOST`), for URLs handed out (uploads). */
  base?: string;
}

/** The session's user once SASL succeeded; its device is the session. */
export function principalOf(s: SessionState): Principal | null {
  return s.userId !== null && s.name !== null ? { id: s.userId, name: s.name, device: deviceOf(s.sid) } : null;
}

/** Stanzas in, core calls; events in, stanzas out. One per node (its caches are the node's). */
export class Xmpp {
  private readonly kinds = new LRUCache<string, 'direct' | 'group'>({ max: KIND_CACHE_MAX });
  private readonly directs = new LRUCache<string, string>({ max: DIRECT_CACHE_MAX });
  private readonly rooms: Rooms;
  /** The other member of a direct conversation (never changes), for carbons. */
  private readonly peers = new LRUCache<string, string>({ max: DIRECT_CACHE_MAX });
  /** IQs of the XEPs beyond the subset (MAM, carbons, vCard, PEP), tried in turn before service-unavailable. */
  private readonly iqHandlers: IqHandler[] = [handleMam, handleCarbons, handleVcard, handlePep, handleUploadSlot];
  /** The group conversation a room JID's local part names (jids.ts: case-insensitive). */
  roomOf: (local: string) => Promise<string | null> = async (local) => conversationOfRoom(local);
  /** A group's bare room JID. */
  roomJid: (conversation: string) => string = (conversation) => roomJid(conversation, this.domain);

  constructor(private readonly core: Core, private readonly domain: string, private readonly log: Logger) {
    this.rooms = new Rooms(core, domain);
  }

  /** Run one stanza. Returns a stream error condition when the stream must end. */
  async command(s: SessionState, st: XmlElement, origin: Origin): Promise<string | null> {
    const cmd = parseStanza(st, this.domain);
    const me = principalOf(s);
    const jid = me ? `${me.name}@${this.domain}${s.resource ? `/${s.resource}` : ''}` : '';
    if (cmd.kind !== 'auth' && !me) return 'not-authorized'; // RFC 6120 §6.4: nothing before SASL
    if (cmd.kind === 'auth') return this.auth(s, cmd.mechanism, cmd.data, origin);
    try {
      // Each stanza spends the user's request budget, as a JSON API request does.
      this.core.limits.request(me!.id);
      const blocking = parseBlocking(st, this.domain); // XEP-0191, blocking.ts
      if (blocking) {
        const children = await runBlocking(this.core, me!, blocking, this.domain);
        queue(s, serialize(el('iq', { xmlns: NS.client, type: 'result', id: blocking.id, to: jid, from: this.domain }, ...children)));
      } else if (!(await this.rooms.handle(s, st, me!, jid))) await this.run(s, cmd, me, jid, origin); // MUC, disco, bookmarks: muc.ts
    } catch (err) {
      const condition = err instanceof AppError ? appErrorCondition(err) : 'internal-server-error';
      if (!(err instanceof AppError)) this.log.error({ err }, 'stanza failed');
      if (cmd.kind !== 'ignore' && cmd.kind !== 'presence') {
        queue(s, serialize(stanzaError(st, condition, condition === 'internal-server-error' ? 'wait' : 'cancel', jid, this.domain)));
      }
    }
    return null;
  }

  /** Render stream events for this session (kinds of unknown conversations looked up first). */
  async render(s: SessionState, me: Principal, events: readonly StreamEvent[], now: number): Promise<string[]> {
    const unknown = new Set<string>();
    for (const ev of events) {
      const conv = ev.type === 'message' || ev.type === 'message_changed' ? ev.message.conversation : ev.type === 'receipt' || ev.type === 'typing' ? ev.conversation : undefined;
      if (typeof conv === 'string' && !this.kinds.has(conv)) unknown.add(conv);
      if (ev.type === 'conversation') this.cacheKind(ev.conversation.id, ev.conversation.kind);
    }
    if (unknown.size) for (const [id, kind] of await this.core.messaging.kindsOf([...unknown])) this.cacheKind(id, kind);
    // Carbons: own direct messages sent elsewhere, with the peer they went to
    const carbon = (ev: StreamEvent) =>
      ev.type === 'message' && ev.message.from === me.name && this.kinds.get(ev.message.conversation) === 'direct' && wantsCarbon(s, ev.message);
    const peerless = [...new Set(events.filter(carbon).map((ev) => (ev as { message: { conversation: string } }).message.conversation))].filter((c) => !this.peers.has(c));
    if (peerless.length) {
      for (const v of await this.core.messaging.views(me, peerless)) {
        const peer = v.members.find((n) => n !== me.name);
        if (peer) this.peers.set(v.id, peer);
      }
    }
    const ctx = {
      domain: this.domain,
      me: `${me.name}@${this.domain}/${s.resource ?? ''}`,
      myName: me.name,
      kindOf: (c: string) => this.kinds.get(c),
      peerOf: () => undefined,
      now,
    };
    return events.flatMap((ev) => {
      const peer = ev.type === 'message' && carbon(ev) ? this.peers.get(ev.message.conversation) : undefined;
      if (ev.type === 'message' && peer) return [serialize(sentCarbon(ev.message, ctx.me, `${me.name}@${this.domain}`, peer, this.domain))];
      return renderEvent(ev, s, ctx).map(serialize);
    });
  }

  private cacheKind(id: string, kind: 'direct' | 'group'): void {
    this.kinds.set(id, kind);
  }

  private async run(s: SessionState, cmd: Command, me: Principal | null, jid: string, origin: Origin): Promise<void> {
    const core = this.core;
    const result = (id: string, ...children: XmlElement[]) =>
      queue(s, serialize(el('iq', { xmlns: NS.client, type: 'result', id, to: jid || undefined, from: this.domain }, ...children)));
    switch (cmd.kind) {
      case 'auth':
        return; // handled by command()
      case 'bind': {
        if (s.auth !== 'authed') {
          queue(s, serialize(el('iq', { xmlns: NS.client, type: 'error', id: cmd.id }, el('error', { type: 'cancel' }, el('not-allowed', { xmlns: NS.stanzas })))));
          return;
        }
        s.resource = /^[\x21-\x7e]{1,64}$/.test(cmd.resource) ? cmd.resource : `parley-${Math.random().toString(36).slice(2, 10)}`;
        s.auth = 'bound';
        queue(s, serialize(el('iq', { xmlns: NS.client, type: 'result', id: cmd.id }, el('bind', { xmlns: NS.bind }, el('jid', {}, `${me!.name}@${this.domain}/${s.resource}`)))));
        return;
      }
      case 'session':
      case 'ping':
        return result(cmd.id);
      case 'disco':
        return result(cmd.id, serverInfo());
      case 'roster': {
        const contacts = await core.contacts.of(me!);
        return result(cmd.id, el('query', { xmlns: NS.roster }, ...contacts.map((c) => rosterItem(c.name, this.domain))));
      }
      case 'send': {
        const conversation = await this.conversationOf(me!, cmd.to);
        const replyTo = cmd.replyTo === undefined ? undefined : await resolveRef(core, me!, conversation, cmd.replyTo);
        // The GET URL of a file I uploaded through an XEP-0363 slot: the file joins this conversation
        const message =
          (replyTo === undefined ? await sendUploaded(core, me!, conversation, cmd.text, cmd.id) : null) ??
          (await core.messaging.send(me!, conversation, { text: cmd.text, clientId: cmd.id, replyTo })).message;
        sentHere(s, message.id);
        if (cmd.id && (cmd.receipt || cmd.markable)) {
          track(s, { conversation, seq: message.seq, id: cmd.id, receipt: cmd.receipt, markable: cmd.markable });
        }
        return;
      }
      case 'correct':
      case 'retract':
      case 'react':
        return runChange(core, me!, cmd, await this.conversationOf(me!, cmd.to));
      case 'typing':
        return core.messaging.typing(me!, await this.conversationOf(me!, cmd.to));
      case 'displayed': {
        const seen = s.seen.find(([id]) => id === cmd.id);
        if (seen) await core.messaging.markRead(me!, seen[1], seen[2]);
        return;
      }
      case 'presence': {
        if (!cmd.available) {
          s.available = false;
          return;
        }
        if (!s.available) {
          s.available = true;
          // From the oldest event no device of mine has confirmed: offline messages arrive now.
          const start = await core.streams.start(me!, undefined);
          s.sentCursor = Math.max(start, s.sentCursor ?? 0);
          s.cursor = Math.max(start, s.cursor ?? 0);
          // contacts who do not share their presence with me show as offline
          for (const c of await core.contacts.of(me!)) {
            if (c.online) {
              queue(s, serialize(el('presence', { xmlns: NS.client, from: `${c.name}@${this.domain}/${CONTACT_RESOURCE}`, to: jid })));
            }
          }
        }
        return;
      }
      case 'error':
        if (cmd.condition === 'service-unavailable' && cmd.stanza.local === 'iq' && (await this.extension(s, cmd.stanza, me!, jid, origin))) return;
        queue(s, serialize(stanzaError(cmd.stanza, cmd.condition, cmd.type, jid, this.domain)));
        return;
      case 'ignore':
        return;
    }
  }

  /** Offer an IQ to the extension handlers; true when one answered it. */
  private async extension(s: SessionState, st: XmlElement, me: Principal, jid: string, origin: Origin): Promise<boolean> {
    const ctx = { core: this.core, domain: this.domain, s, me, jid, roomOf: this.roomOf, roomJid: this.roomJid, base: origin.base };
    for (const handle of this.iqHandlers) if (await handle(st, ctx)) return true;
    return false;
  }

  /**
   * SASL PLAIN through the one login rule (the JSON login's counters: failures over BOSH and over
   * /api/login add up). Returns a stream error once the session failed MAX_AUTH_FAILURES times.
   */
  private async auth(s: SessionState, mechanism: string, data: string, origin: Origin): Promise<string | null> {
    const fail = (condition: string): string | null => {
      queue(s, serialize(el('failure', { xmlns: NS.sasl }, el(condition, {}))));
      s.authFailures = (s.authFailures ?? 0) + 1;
      return s.authFailures >= MAX_AUTH_FAILURES ? 'policy-violation' : null;
    };
    if (s.auth !== 'none') return fail('aborted');
    if (mechanism !== 'PLAIN') return fail('invalid-mechanism');
    const creds = decodePlain(data, this.domain);
    if (!creds) return fail('incorrect-encoding');
    let user: Principal;
    try {
      user = await this.core.logins.verify(creds.name, creds.password, origin.address);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return fail(err.status === 429 ? 'temporary-auth-failure' : 'not-authorized');
    }
    s.auth = 'authed';
    s.userId = user.id;
    s.name = user.name;
    queue(s, serialize(el('success', { xmlns: NS.sasl })));
    return null;
  }

  /** The conversation a message goes to: the direct one with a user (created on first use), or a group. */
  private async conversationOf(me: Principal, to: Target): Promise<string> {
    if (to.kind === 'group') return to.conversation;
    const key = `${me.id} ${to.name}`;
    const cached = this.directs.get(key);
    if (cached) return cached;
    await this.core.limits.conversation(me.id);
    const { id } = await this.core.messaging.directId(me, to.name);
    this.directs.set(key, id);
    this.cacheKind(id, 'direct');
    return id;
  }
}

/** Queue a stanza for the session's next answer. */
export function queue(s: SessionState, stanza: string): void {
  s.outq.push(stanza);
}

/** Map a core error to an XMPP stanza error condition (RFC 6120 §8.3.3). */
function appErrorCondition(err: AppError): string {
  switch (err.status) {
    case 400: return 'bad-request';
    case 401: return 'not-authorized';
    case 403: return 'forbidden';
    case 404: return 'item-not-found';
    case 409: return 'conflict';
    case 413: return 'not-acceptable';
    case 429: return 'resource-constraint';
    default: return 'internal-server-error';
  }
}
