/**
 * XEP-0030 service discovery: what Parley advertises, in one place. Each extension exports a
 * const array of the feature strings it serves (MUC in jids.ts, bookmarks in bookmarks.ts, ...)
 * and `FEATURES` spreads them in, per entity that answers disco#info:
 *
 * - `server`: the domain itself (identity server/im);
 * - `account`: a user's bare JID (identity account/registered and pubsub/pep: PEP-based
 *   extensions such as bookmarks are asked there);
 * - `service`: the MUC service `groups.DOMAIN` (identity conference/text);
 * - `room`: each group's room JID (identity conference/text).
 *
 * The upload service (`upload.DOMAIN`, upload.ts) answers its own disco#info (uploadDiscoInfo) and
 * is listed in the server's items beside the MUC service.
 *
 * An extension that adds an entity's feature adds its array to the entity's list below; nothing
 * else needs to change for it to be advertised.
 */
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import { BLOCKING_FEATURES } from './blocking.js';
import { BOOKMARK_ACCOUNT_FEATURES } from './bookmarks.js';
import { CARBONS_FEATURES } from './carbons.js';
import { CORRECTION_FEATURES } from './corrections.js';
import { conversationOfRoom, MUC_ROOM_FEATURES, MUC_SERVICE_FEATURES, mucService, roomJid } from './jids.js';
import { MAM_FEATURES } from './mam.js';
import { NS, parseJid } from './stanzas.js';
import { uploadDiscoInfo, uploadService } from './upload.js';
import { VCARD_FEATURES } from './vcard.js';
import { el, type XmlElement } from './xml.js';

export const DISCO_ITEMS = 'http://jabber.org/protocol/disco#items';

/** What the server itself serves to every session (the subset in stanzas.ts). */
export const CORE_FEATURES: readonly string[] = [NS.discoInfo, DISCO_ITEMS, NS.ping, NS.receipts, NS.markers, NS.chatstates, NS.sid];

/** The registry: feature strings per entity. Add an extension's array to its entity here. */
export const FEATURES: { readonly [K in 'server' | 'account' | 'service' | 'room']: readonly string[] } = {
  server: [...CORE_FEATURES, ...CARBONS_FEATURES, ...VCARD_FEATURES, ...CORRECTION_FEATURES, ...BLOCKING_FEATURES],
  account: [NS.discoInfo, ...MAM_FEATURES, ...BOOKMARK_ACCOUNT_FEATURES],
  service: [NS.discoInfo, DISCO_ITEMS, ...MUC_SERVICE_FEATURES],
  room: [NS.discoInfo, NS.sid, ...MAM_FEATURES, ...CORRECTION_FEATURES, ...MUC_ROOM_FEATURES],
};

function featureEls(list: readonly string[]): XmlElement[] {
  return [...new Set(list)].map((v) => el('feature', { var: v }));
}

/** The disco#info query of the server (identity server/im and its features). */
export function serverInfo(): XmlElement {
  return el('query', { xmlns: NS.discoInfo }, el('identity', { category: 'server', type: 'im', name: 'Parley' }), ...featureEls(FEATURES.server));
}

/** The answer of one disco query: the query element, or a stanza error condition. */
export type DiscoAnswer = { query: XmlElement } | { condition: string };

/**
 * Answer disco#info or disco#items addressed to `to` (undefined: the server). Rooms are looked up
 * through the core: a room of which I am not a member answers the core's error (forbidden), one
 * that does not exist item-not-found.
 */
export async function discoAnswer(core: Core, me: Principal, domain: string, to: string | undefined, payload: XmlElement): Promise<DiscoAnswer> {
  const items = payload.ns === DISCO_ITEMS;
  const node = payload.attrs.node;
  const j = to === undefined ? { local: '', domain, resource: '' } : parseJid(to);
  if (!j) return { condition: 'jid-malformed' };
  const wrap = (...children: XmlElement[]) => ({ query: el('query', { xmlns: payload.ns ?? NS.discoInfo, node }, ...children) });
  if (j.domain === domain && !j.resource) {
    if (!j.local) {
      if (node) return { condition: 'item-not-found' };
      // The server's items: the MUC service (where Converse.js looks for groups) and the upload service.
      return items
        ? wrap(el('item', { jid: mucService(domain), name: 'Groups' }), el('item', { jid: uploadService(domain), name: 'Files' }))
        : { query: serverInfo() };
    }
    if (j.local.toLowerCase() !== me.name) {
      // Another user's account: what it offers is the same as mine, but nothing about it is told.
      return items ? wrap() : wrap(el('identity', { category: 'account', type: 'registered' }));
    }
    if (node) return { condition: 'item-not-found' };
    return items
      ? wrap()
      : wrap(el('identity', { category: 'account', type: 'registered' }), el('identity', { category: 'pubsub', type: 'pep' }), ...featureEls(FEATURES.account));
  }
  if (j.domain === uploadService(domain) && !j.local && !j.resource) {
    if (node) return { condition: 'item-not-found' };
    return items ? wrap() : { query: uploadDiscoInfo(core.uploads.limit) };
  }
  if (j.domain !== mucService(domain)) return { condition: 'item-not-found' };
  if (!j.local) {
    if (node) return { condition: 'item-not-found' };
    if (!items) {
      return wrap(el('identity', { category: 'conference', type: 'text', name: 'Parley groups' }), ...featureEls(FEATURES.service));
    }
    // My groups, as the service's items (XEP-0045 §6.3).
    const { conversations } = await core.messaging.list(me);
    return wrap(...conversations.filter((c) => c.kind === 'group').map((c) => el('item', { jid: roomJid(c.id, domain), name: c.title ?? undefined })));
  }
  const conversation = conversationOfRoom(j.local);
  if (conversation === null) return { condition: 'item-not-found' };
  const conv = await core.messaging.requireMember(conversation, me);
  if (conv.kind !== 'group') return { condition: 'item-not-found' };
  if (items) return wrap(); // occupants are not listed (XEP-0045 §6.5 allows an empty list)
  if (node === 'x-roomuser-item') {
    // The reserved nick (XEP-0045 §7.12): a member's nick is their Parley name.
    return wrap(el('identity', { category: 'conference', type: 'text', name: me.name }));
  }
  if (node) return { condition: 'item-not-found' };
  const [view] = await core.messaging.views(me, [conv.id]);
  const title = view?.title ?? conv.title ?? '';
  return wrap(
    el('identity', { category: 'conference', type: 'text', name: title }),
    ...featureEls(FEATURES.room),
    el(
      'x',
      { xmlns: 'jabber:x:data', type: 'result' },
      el('field', { var: 'FORM_TYPE', type: 'hidden' }, el('value', {}, 'http://jabber.org/protocol/muc#roominfo')),
      el('field', { var: 'muc#roomconfig_roomname', label: 'Name' }, el('value', {}, title)),
      el('field', { var: 'muc#roominfo_subject', label: 'Subject' }, el('value', {}, title)),
      el('field', { var: 'muc#roominfo_occupants', label: 'Members' }, el('value', {}, String(view?.members.length ?? 0))),
    ),
  );
}
