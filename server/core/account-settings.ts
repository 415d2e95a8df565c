import { LRUCache } from 'lru-cache';
import { randomBytes } from 'node:crypto';
import type { Store } from '../store/store.js';
import { checkNewPassword, normaliseName, type Accounts, type Principal } from './accounts.js';
import { errors } from './errors.js';
import type { Logins } from './logins.js';
import type { Messaging } from './messaging.js';
import type { Notifier } from './notifier.js';
import type { MessageView } from './views.js';

/** Longest display name, characters (after trimming). */
export const MAX_DISPLAY_NAME = 64;
/** What a deleted account's messages show as their sender. */
export const DELETED_SENDER = '[deleted]';
/**
 * How long a node trusts that a sender's account is not deleted (60 s, like the token cache): a
 * deletion shows as "[deleted]" at once on the node that made it, within a minute on the others.
 */
const DELETED_CACHE_MS = 60_000;
/** Messages of a deleted account emptied per statement ("remove"). */
const EMPTY_PAGE = 500;

/** A user as others see them. */
export interface ProfileView {
  name: string;
  display_name: string;
}

/** One of my devices (tokens). */
export interface DeviceView {
  id: number;
  name: string;
  created_at: string;
  /** Coarse: written at most once a minute. */
  last_used_at: string | null;
  address: string | null;
  /** The device this request came from. */
  current: boolean;
}

/**
 * Which senders' accounts were deleted, and what became of their messages, cached per node: a
 * deletion is for good, so a deleted answer is kept; a live one for DELETED_CACHE_MS.
 */
export class DeletedSenders {
  private readonly known = new LRUCache<number, 'keep' | 'remove' | 'live'>({ max: 50_000 });

  constructor(private readonly store: Store) {}

  /** Of these user ids, the deleted ones and their messages' fate. */
  async of(ids: Iterable<number>): Promise<Map<number, 'keep' | 'remove'>> {
    const out = new Map<number, 'keep' | 'remove'>();
    const ask: number[] = [];
    for (const id of new Set(ids)) {
      const k = this.known.get(id);
      if (k === undefined) ask.push(id);
      else if (k !== 'live') out.set(id, k);
    }
    if (ask.length === 0) return out;
    const found = await this.store.deletedUsers(ask);
    for (const id of ask) {
      const mode = found.get(id);
      if (mode) {
        this.known.set(id, mode);
        out.set(id, mode);
      } else {
        this.known.set(id, 'live', { ttl: DELETED_CACHE_MS });
      }
    }
    return out;
  }

  /** This node deleted the account: forget what it knew. */
  forget(id: number): void {
    this.known.delete(id);
  }
}

/**
 * A message of a deleted account as its readers see it: from "[deleted]"; with `remove`, a
 * tombstone as spec A has it (no text, no attachment, no edits, reactions or reply, `deleted:
 * true`), laid over the view after branch `msgs`'s changes so no edit shows through.
 */
export function deletedSenderView(view: MessageView, mode: 'keep' | 'remove'): MessageView {
  const out: MessageView = { ...view, from: DELETED_SENDER };
  if (mode === 'remove') {
    out.text = '';
    delete out.attachment;
    delete out.edited_at;
    delete out.reactions;
    delete out.reply_to;
    delete out.purged;
    out.deleted = true;
  }
  return out;
}

/**
 * What a user sets about their own account (issue 13 B): display name, password, devices,
 * deletion, blocks and mutes. The rules that other actions must follow (a blocked user may not
 * open or send) are checked in Conversations and Messaging, through the store's block queries.
 */
export class AccountSettings {
  constructor(
    private readonly store: Store,
    private readonly accounts: Accounts,
    private readonly logins: Logins,
    private readonly messaging: Messaging,
    private readonly notifier: Notifier,
    private readonly deleted: DeletedSenders,
    /** Revoke every bot token of a user, on every node (core/bots.ts). */
    private readonly revokeBots: (me: Principal) => Promise<void>,
  ) {}

  /** My profile. */
  async me(me: Principal): Promise<ProfileView> {
    const p = await this.store.profileById(me.id);
    return { name: me.name, display_name: p?.displayName ?? '' };
  }

  /** Someone's profile (any signed-in user may look); 404 for an unknown or deleted account. */
  async profile(rawName: string): Promise<ProfileView> {
    let name: string;
    try {
      name = normaliseName(rawName);
    } catch {
      throw errors.notFound('user');
    }
    const p = await this.store.profileByName(name);
    if (!p || p.deleted) throw errors.notFound('user');
    return { name: p.name, display_name: p.displayName };
  }

  /** Set my display name ('' clears it); a "profile" event to me and everyone I share a conversation with. */
  async setDisplayName(me: Principal, displayName: string): Promise<ProfileView> {
    const heads = await this.store.setDisplayName(me.id, displayName);
    this.notifier.wake(heads);
    return { name: me.name, display_name: displayName };
  }

  /**
   * Change my password: the current one checked like a login (counted against the login limits),
   * then every other token of mine revoked on every node.
   */
  async changePassword(me: Principal, currentToken: string, current: string, password: string, address: string): Promise<void> {
    const next = checkNewPassword(password);
    await this.logins.verify(me.name, current, address);
    await this.store.setPasswordHash(me.id, await this.accounts.hash(next));
    await this.accounts.revokeHashes(await this.store.revokeTokens(me.id, this.accounts.hashOf(currentToken)));
  }

  /** My devices, oldest first. */
  async devices(me: Principal): Promise<DeviceView[]> {
    return (await this.store.devices(me.id)).map((d) => ({
      id: d.id,
      name: d.name,
      created_at: d.createdAt.toISOString(),
      last_used_at: d.lastUsedAt?.toISOString() ?? null,
      address: d.address,
      current: me.device !== undefined && d.hash.toString('hex').startsWith(me.device),
    }));
  }

  /** Sign one of my devices out, on every node; 404 when it is not mine. */
  async revokeDevice(me: Principal, deviceId: number): Promise<void> {
    const hash = await this.store.revokeDevice(me.id, deviceId);
    if (!hash) throw errors.notFound('device');
    await this.accounts.revokeHashes([hash]);
  }

  /**
   * Delete my account. The row stays (the name is reserved, messages keep a sender) with a
   * password nobody knows; every token (bot tokens too) is revoked; I leave every conversation; `remove` empties
   * my messages into tombstones and forgets my uploads.
   */
  async deleteAccount(me: Principal, password: string, mode: 'keep' | 'remove', address: string): Promise<void> {
    await this.logins.verify(me.name, password, address);
    await this.store.markDeleted(me.id, mode, await this.accounts.hash(randomBytes(32).toString('base64url')));
    this.deleted.forget(me.id);
    await this.accounts.revokeHashes(await this.store.revokeTokens(me.id, null));
    if (mode === 'remove') await this.emptyMessagesOf(me.id);
    await this.revokeBots(me);
    // Leaving a group passes its ownership on, as leaving by hand does
    for (const c of await this.store.conversationIdsOf(me.id)) {
      const { heads } = await this.store.changeMembers(c.id, { remove: me.id, left: c.kind === 'group' });
      this.notifier.wake(heads);
    }
  }

  /** "remove": every message of the user becomes a tombstone (its text sealed empty, no attachment). */
  private async emptyMessagesOf(userId: number): Promise<void> {
    let after: { conversationId: string; seq: number } | null = null;
    for (;;) {
      const page = await this.store.messagesOfSender(userId, after, EMPTY_PAGE);
      if (page.length === 0) break;
      const items: Array<{ conversationId: string; seq: number; id: string; body: Buffer }> = [];
      for (const m of page) items.push({ ...m, body: await this.messaging.sealEmpty(m.conversationId, m.id) });
      await this.store.emptyMessages(items);
      after = page[page.length - 1]!;
    }
    await this.store.removeUploads(userId);
  }

  /** I block someone (idempotent); 404 unknown, 400 myself. */
  async block(me: Principal, rawName: string): Promise<void> {
    const other = await this.other(me, rawName);
    await this.store.block(me.id, other);
  }

  /** I unblock someone (idempotent for a known name). */
  async unblock(me: Principal, rawName: string): Promise<void> {
    const other = await this.other(me, rawName);
    await this.store.unblock(me.id, other);
  }

  /** The names I block. */
  blocks(me: Principal): Promise<string[]> {
    return this.store.blocksOf(me.id);
  }

  /** Mute or unmute a conversation of mine; a "conversation" event to my own devices when it changed. */
  async setMuted(me: Principal, conversationId: string, muted: boolean): Promise<void> {
    const conv = await this.messaging.requireMember(conversationId, me);
    const heads = await this.store.setMuted(conv.id, me.id, muted);
    if (heads) this.notifier.wake(heads);
  }

  private async other(me: Principal, rawName: string): Promise<number> {
    const name = normaliseName(rawName);
    if (name === me.name) throw errors.badRequest('you cannot block yourself', 'bad_name');
    const user = await this.store.userByName(name);
    if (!user) throw errors.notFound('user');
    return Number(user.id);
  }
}
