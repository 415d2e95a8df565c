/**
 * What the IQ handlers of the XEPs beyond the core subset (mam.ts, carbons.ts, vcard.ts) are given:
 * the session, its user and a way to queue stanzas. A handler answers `true` when the IQ was its own
 * (and it queued the answer), `false` to let the next one look (in the end: service-unavailable).
 */
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import type { SessionState } from './session.js';
import { NS } from './stanzas.js';
import { el, serialize, type XmlElement } from './xml.js';

export interface IqContext {
  core: Core;
  domain: string;
  s: SessionState;
  me: Principal;
  /** The session's full JID. */
  jid: string;
  /** The conversation a room JID's local part names (the MUC code decides; null when none). */
  roomOf: (local: string) => Promise<string | null>;
  /** A group conversation's room JID, bare. */
  roomJid: (conversation: string) => string;
  /** This server's URL as the request reached it (`https://HOST`), for the URLs handed out. */
  base: string | undefined;
}

export type IqHandler = (st: XmlElement, ctx: IqContext) => Promise<boolean>;

/** Queue a stanza for the session's next answer. */
export function send(ctx: IqContext, stanza: XmlElement): void {
  ctx.s.outq.push(serialize(stanza));
}

/** The result of an IQ, from whom it was addressed to. */
export function iqResult(st: XmlElement, ctx: IqContext, ...children: XmlElement[]): XmlElement {
  return el('iq', { xmlns: NS.client, type: 'result', id: st.attrs.id, to: ctx.jid, from: st.attrs.to }, ...children);
}

/** An IQ error: a stanza error condition (RFC 6120 §8.3.3), optionally with an application condition. */
export function iqError(st: XmlElement, ctx: IqContext, type: 'cancel' | 'modify' | 'auth' | 'wait', condition: string, extra?: XmlElement): XmlElement {
  return el(
    'iq',
    { xmlns: NS.client, type: 'error', id: st.attrs.id, to: ctx.jid, from: st.attrs.to },
    el('error', { type }, el(condition, { xmlns: NS.stanzas }), extra),
  );
}

/** Whether an IQ is addressed to the user's own account (no `to`, or the bare or full own JID). */
export function toOwnAccount(st: XmlElement, ctx: IqContext): boolean {
  const to = st.attrs.to;
  if (to === undefined) return true;
  const bare = `${ctx.me.name}@${ctx.domain}`;
  const lower = to.toLowerCase();
  return lower === bare || lower.startsWith(`${bare}/`);
}
