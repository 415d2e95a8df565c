/**
 * XEP-0191 (Blocking Command) over BOSH, on core's blocks (docs/bosh.md): get the blocklist,
 * block and unblock local users by bare JID. Blocking someone here is blocking them in the JSON
 * API: no direct conversation or message from them, no adding me to groups, no presence of mine.
 * Not done: blocklist pushes to the user's other resources (a client asks again), and blocking
 * JIDs of other domains (Parley does not federate: item-not-found).
 */
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import { errors } from '../../core/errors.js';
import { NS, parseJid } from './stanzas.js';
import { childElements, el, type XmlElement } from './xml.js';

/** The XEP-0191 namespace. */
export const NS_BLOCKING = 'urn:xmpp:blocking';
/** What service discovery lists for this file (another branch adds the disco answer). */
export const BLOCKING_FEATURES = [NS_BLOCKING] as const;
/** Most items one block or unblock may name (a request must not probe hundreds of names). */
export const MAX_BLOCK_ITEMS = 50;

/** A blocking command from a client's IQ. */
export type BlockingCommand =
  | { kind: 'blocklist'; id: string }
  | { kind: 'block'; id: string; names: string[] }
  /** names empty: unblock everyone (XEP-0191 §3.4). */
  | { kind: 'unblock'; id: string; names: string[] };

/**
 * The blocking command an IQ carries; null when it is not one (the dispatch goes on as before).
 * A malformed one (no items to block, a JID that is not a bare JID) throws 400 (bad-request).
 */
export function parseBlocking(st: XmlElement, domain: string): BlockingCommand | null {
  if (st.ns !== NS.client || st.local !== 'iq' || st.attrs.id === undefined) return null;
  const type = st.attrs.type;
  const payload = childElements(st)[0];
  if (!payload || payload.ns !== NS_BLOCKING) return null;
  const id = st.attrs.id;
  if (type === 'get' && payload.local === 'blocklist') return { kind: 'blocklist', id };
  if (type !== 'set' || (payload.local !== 'block' && payload.local !== 'unblock')) return null;
  const items = childElements(payload, 'item', NS_BLOCKING);
  if (items.length > MAX_BLOCK_ITEMS) throw errors.badRequest(`at most ${MAX_BLOCK_ITEMS} items`);
  const names = items.map((item) => {
    const jid = parseJid(item.attrs.jid);
    if (!jid || !jid.local || jid.resource) throw errors.badRequest('an item needs a bare JID');
    if (jid.domain !== domain) throw errors.notFound('user'); // no federation
    return jid.local.toLowerCase();
  });
  if (payload.local === 'block') {
    if (names.length === 0) throw errors.badRequest('block needs at least one item');
    return { kind: 'block', id, names };
  }
  return { kind: 'unblock', id, names };
}

/** Run a blocking command; the result IQ's children (an AppError becomes the stanza error). */
export async function runBlocking(core: Core, me: Principal, cmd: BlockingCommand, domain: string): Promise<XmlElement[]> {
  switch (cmd.kind) {
    case 'blocklist': {
      const names = await core.settings.blocks(me);
      return [el('blocklist', { xmlns: NS_BLOCKING }, ...names.map((n) => el('item', { jid: `${n}@${domain}` })))];
    }
    case 'block':
      for (const name of cmd.names) await core.settings.block(me, name);
      return [];
    case 'unblock': {
      const names = cmd.names.length > 0 ? cmd.names : await core.settings.blocks(me);
      for (const name of names) await core.settings.unblock(me, name);
      return [];
    }
  }
}
