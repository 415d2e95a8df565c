/**
 * Room JIDs for Parley groups. XMPP clients lower-case JIDs (RFC 7622: localparts compare
 * case-insensitively; Converse.js lower-cases every JID it stores), while Parley's conversation ids
 * are mixed-case base64url. A room's localpart is therefore a lower-case encoding of the id, one
 * to one: every upper-case letter X becomes `.x` (the dot is not in the base64url alphabet), the
 * rest stays as it is. `gAb-9` ↔ `g.ab-9`. Decoding lower-cases first, so `G.AB-9` finds the same
 * room.
 *
 * Before rooms existed, clients wrote the conversation id itself (`gAb-9@groups.DOMAIN`); a
 * localpart with upper-case letters and no dot is still read that way (it cannot be an encoding,
 * which has no upper-case letter).
 *
 * The MUC namespaces and the service's and rooms' features live here too (muc.ts answers them,
 * disco.ts advertises them; neither imports the other's constants at load).
 */

/** The MUC service's subdomain: rooms are `LOCAL@groups.DOMAIN`. */
export const MUC_SUBDOMAIN = 'groups';

/** The MUC service's JID. */
export function mucService(domain: string): string {
  return `${MUC_SUBDOMAIN}.${domain}`;
}

/** The lower-case localpart of a conversation id. */
export function roomLocal(conversation: string): string {
  return conversation.replace(/[A-Z]/g, (c) => `.${c.toLowerCase()}`);
}

/** A room's bare JID. */
export function roomJid(conversation: string, domain: string): string {
  return `${roomLocal(conversation)}@${mucService(domain)}`;
}

/**
 * The conversation id a room localpart names (case-insensitive), or null when it is not one an
 * encoding produces (a dot not followed by a letter).
 */
export function conversationOfRoom(local: string): string | null {
  if (/[A-Z]/.test(local) && !local.includes('.')) return local; // a raw id, as written before rooms
  const lower = local.toLowerCase();
  if (/\.(?![a-z])/.test(lower)) return null;
  return lower.replace(/\.([a-z])/g, (_, c: string) => c.toUpperCase());
}

export const NS_MUC = 'http://jabber.org/protocol/muc';
export const NS_MUC_USER = `${NS_MUC}#user`;
export const NS_MUC_ADMIN = `${NS_MUC}#admin`;
export const NS_MUC_OWNER = `${NS_MUC}#owner`;

/** The MUC service's features. */
export const MUC_SERVICE_FEATURES: readonly string[] = [NS_MUC];
/** Every room's features: what a Parley group is, in XEP-0045's words. */
export const MUC_ROOM_FEATURES: readonly string[] = [
  NS_MUC,
  'muc_persistent',
  'muc_membersonly',
  'muc_nonanonymous',
  'muc_hidden',
  'muc_unmoderated',
  'muc_unsecured',
  `${NS_MUC}#stable_id`,
];

