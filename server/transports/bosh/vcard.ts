/**
 * vCard-temp (XEP-0054) and the PEP (XEP-0163) reads clients make at login. A vCard is answered for
 * the user and their contacts (everyone sharing a conversation): the name as FN and NICKNAME, which
 * is all a Parley account has. Nobody else's vCard is told apart from a missing one
 * (`item-not-found`), so vCards do not reveal which names exist. Parley keeps no PEP nodes: reading
 * one (OMEMO device lists, avatars, nicknames, …) is `item-not-found`, as for a node never
 * published (XEP-0060 §6.5.9.11), for users, rooms and occupants alike; publishing is `feature-not-implemented` with the
 * `unsupported feature='publish'` condition (§7.1.3.1). Bookmark nodes are left to the MUC code.
 */
import { iqError, iqResult, send, type IqContext } from './iq-context.js';
import { parseJid } from './stanzas.js';
import { child, childElements, el, type XmlElement } from './xml.js';

export const VCARD_NS = 'vcard-temp';
export const PUBSUB_NS = 'http://jabber.org/protocol/pubsub';
const PUBSUB_ERRORS_NS = 'http://jabber.org/protocol/pubsub#errors';
/** Nodes answered elsewhere (bookmarks: XEP-0402 and XEP-0048 over PEP). */
const NOT_MINE = new Set(['urn:xmpp:bookmarks:1', 'storage:bookmarks']);

/** disco#info features of the server (vCards). */
export const VCARD_FEATURES = [VCARD_NS] as const;

/** The bare user a stanza is addressed to (the own account when `to` is absent), or null when not a user of this domain. */
function userTo(st: XmlElement, ctx: IqContext): string | null {
  if (st.attrs.to === undefined) return ctx.me.name;
  const j = parseJid(st.attrs.to);
  return j && j.local && j.domain === ctx.domain ? j.local.toLowerCase() : null;
}

/** Whether a stanza is addressed to a room or an occupant (`groups.DOMAIN`): no vCard or PEP node there either. */
function toRoom(st: XmlElement, ctx: IqContext): boolean {
  const j = parseJid(st.attrs.to);
  return j !== null && j.local !== '' && j.domain === `groups.${ctx.domain}`;
}

/** `<vCard xmlns='vcard-temp'/>` get: the user's own, or a contact's; rooms and occupants have none. */
export async function handleVcard(st: XmlElement, ctx: IqContext): Promise<boolean> {
  if (!child(st, 'vCard', VCARD_NS)) return false;
  if (st.attrs.type === 'get' && toRoom(st, ctx)) {
    send(ctx, iqError(st, ctx, 'cancel', 'item-not-found'));
    return true;
  }
  const name = userTo(st, ctx);
  if (name === null) return false;
  if (st.attrs.type === 'set') {
    // The name is the account's; there is nothing else to keep
    send(ctx, iqError(st, ctx, 'cancel', 'not-allowed'));
    return true;
  }
  const known = name === ctx.me.name || (await ctx.core.contacts.of(ctx.me)).some((c) => c.name === name);
  if (!known) {
    send(ctx, iqError(st, ctx, 'cancel', 'item-not-found'));
    return true;
  }
  send(ctx, iqResult(st, ctx, el('vCard', { xmlns: VCARD_NS }, el('FN', {}, name), el('NICKNAME', {}, name))));
  return true;
}

/** PEP reads and publishes addressed to a user of this domain (bookmark nodes excepted). */
export async function handlePep(st: XmlElement, ctx: IqContext): Promise<boolean> {
  const pubsub = child(st, 'pubsub', PUBSUB_NS);
  if (!pubsub || (userTo(st, ctx) === null && !toRoom(st, ctx))) return false;
  const op = childElements(pubsub)[0];
  if (!op) return false;
  if (NOT_MINE.has(op.attrs.node ?? '')) return false;
  if (st.attrs.type === 'get' && op.local === 'items') {
    send(ctx, iqError(st, ctx, 'cancel', 'item-not-found'));
    return true;
  }
  const feature = op.local === 'publish' ? 'publish' : op.local === 'retract' ? 'retract-items' : op.local === 'subscribe' ? 'subscribe' : 'publish';
  send(ctx, iqError(st, ctx, 'cancel', 'feature-not-implemented', el('unsupported', { xmlns: PUBSUB_ERRORS_NS, feature })));
  return true;
}
