/**
 * Bookmarks derived from the user's groups, so that a client that joins its bookmarks (Converse.js
 * does, `autojoin`) shows every group at login. XEP-0402 (`urn:xmpp:bookmarks:1`, one PEP item per
 * room, asked for when the account advertises `urn:xmpp:bookmarks:1#compat`) and, for older
 * clients, XEP-0048 in PEP (`storage:bookmarks`, one item holding them all).
 *
 * Parley's groups are the bookmarks: a publish or retract from the client is acknowledged and
 * changes nothing (leaving a group is a JSON API action, never a side effect of a bookmark).
 */
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import { roomJid } from './jids.js';
import { el, type XmlElement } from './xml.js';

export const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
export const NS_PUBSUB_EVENT = 'http://jabber.org/protocol/pubsub#event';
export const NS_BOOKMARKS2 = 'urn:xmpp:bookmarks:1';
export const NS_BOOKMARKS_LEGACY = 'storage:bookmarks';

/** What the account (bare JID) advertises for bookmarks: Converse.js 14 checks exactly these. */
export const BOOKMARK_ACCOUNT_FEATURES: readonly string[] = [`${NS_BOOKMARKS2}#compat`, `${NS_PUBSUB}#publish-options`];

/** The bookmark nodes answered here. */
export function isBookmarkNode(node: string | undefined): node is string {
  return node === NS_BOOKMARKS2 || node === NS_BOOKMARKS_LEGACY;
}

/** One room's XEP-0402 conference element. */
export function conference(title: string | null, nick: string): XmlElement {
  return el('conference', { xmlns: NS_BOOKMARKS2, name: title ?? undefined, autojoin: 'true' }, el('nick', {}, nick));
}

/** The `<items node=…>` of a bookmark node: one item per group of mine. */
export async function bookmarkItems(core: Core, me: Principal, domain: string, node: string): Promise<XmlElement> {
  const { conversations } = await core.messaging.list(me);
  const groups = conversations.filter((c) => c.kind === 'group');
  if (node === NS_BOOKMARKS2) {
    return el('items', { node }, ...groups.map((g) => el('item', { id: roomJid(g.id, domain) }, conference(g.title, me.name))));
  }
  return el(
    'items',
    { node },
    el(
      'item',
      { id: 'current' },
      el(
        'storage',
        { xmlns: NS_BOOKMARKS_LEGACY },
        ...groups.map((g) => el('conference', { jid: roomJid(g.id, domain), name: g.title ?? undefined, autojoin: 'true' }, el('nick', {}, me.name))),
      ),
    ),
  );
}

/**
 * A push of one new bookmark (XEP-0402 §4: a PEP notification from the user's bare JID), for a
 * group I was added to or created while connected.
 */
export function bookmarkPush(id: string, title: string | null, myName: string, domain: string, to: string): XmlElement {
  return el(
    'message',
    { xmlns: 'jabber:client', type: 'headline', from: `${myName}@${domain}`, to, id: `bookmark-${id}` },
    el('event', { xmlns: NS_PUBSUB_EVENT }, el('items', { node: NS_BOOKMARKS2 }, el('item', { id: roomJid(id, domain) }, conference(title, myName)))),
  );
}
