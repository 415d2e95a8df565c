/**
 * XEP-0280 Message Carbons (`urn:xmpp:carbons:2`). Every BOSH session of a user already reads the
 * user's whole stream, so every message *to* the user reaches each of their sessions directly and
 * `<received/>` carbons never apply. What carbons add is the user's own direct messages sent from
 * elsewhere (another BOSH session, the JSON API, curl): a session that enabled carbons gets them as
 * `<sent/>` carbons; the session that sent a message does not get it back. Own group messages are
 * reflected by the room as before (XEP-0280 §6: groupchat is not carbon-copied).
 */
import type { MessageView } from '../../core/views.js';
import { iqResult, send, toOwnAccount, type IqContext } from './iq-context.js';
import type { SessionState } from './session.js';
import { NS } from './stanzas.js';
import { child, el, type XmlElement } from './xml.js';

export const CARBONS_NS = 'urn:xmpp:carbons:2';
const FORWARD_NS = 'urn:xmpp:forward:0';
/** Ids of messages this session sent itself, kept to leave them out of its carbons. */
const SENT_IDS_KEPT = 32;

/** disco#info features of the server: carbons. */
export const CARBONS_FEATURES = [CARBONS_NS] as const;

/** `<enable/>` and `<disable/>` (IQ set to the own account). */
export async function handleCarbons(st: XmlElement, ctx: IqContext): Promise<boolean> {
  if (st.attrs.type !== 'set' || !toOwnAccount(st, ctx)) return false;
  const on = child(st, 'enable', CARBONS_NS);
  const off = child(st, 'disable', CARBONS_NS);
  if (!on && !off) return false;
  ctx.s.carbons = Boolean(on);
  send(ctx, iqResult(st, ctx));
  return true;
}

/** Remember that this session sent a message (its carbon is not for this session). */
export function sentHere(s: SessionState, messageId: string): void {
  const ids = (s.sentIds ??= []);
  ids.push(messageId);
  if (ids.length > SENT_IDS_KEPT) ids.splice(0, ids.length - SENT_IDS_KEPT);
}

/** Whether an own direct message is to be carbon-copied to this session. */
export function wantsCarbon(s: SessionState, m: MessageView): boolean {
  return s.carbons === true && !(s.sentIds ?? []).includes(m.id);
}

function attachmentUrl(attachment: unknown): string | undefined {
  const url = typeof attachment === 'object' && attachment !== null ? (attachment as { url?: unknown }).url : undefined;
  return typeof url === 'string' ? url : undefined;
}

/** The `<sent/>` carbon of an own direct message to `peer` (a name), for the session `me` (full JID). */
export function sentCarbon(m: MessageView, me: string, myBare: string, peer: string, domain: string): XmlElement {
  const url = attachmentUrl(m.attachment);
  return el(
    'message',
    { xmlns: NS.client, from: myBare, to: me, type: 'chat' },
    el('sent', { xmlns: CARBONS_NS },
      el('forwarded', { xmlns: FORWARD_NS },
        el('message', { xmlns: NS.client, type: 'chat', from: myBare, to: `${peer}@${domain}`, id: m.client_id || m.id },
          el('body', {}, m.text || (url ?? '')),
          url !== undefined ? el('x', { xmlns: NS.oob }, el('url', {}, url)) : null,
          el('stanza-id', { xmlns: NS.sid, id: m.id, by: myBare })))),
  );
}
