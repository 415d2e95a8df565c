import { LRUCache } from 'lru-cache';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ConversationRow, NewConversation, OpenOutcome, Role, Store, WhoCanAdd } from '../store/store.js';
import type { Principal } from './accounts.js';
import { normaliseName } from './accounts.js';
import { errors } from './errors.js';
import { GroupCommit } from './group-commit.js';
import type { Keyring } from './keys.js';
import type { Notifier } from './notifier.js';
import { byName, rolesOf, type ConversationView } from './views.js';

/** Largest group. */
export const MAX_MEMBERS = 500;
/** Conversations whose kind and wrapped key a node keeps in memory (a few hundred bytes each). */
const META_LIMIT = 50_000;

/** A conversation as its member sees it: with their role and the seq after which they may read. */
export type MemberConversation = ConversationRow & { role: Role; fromSeq: number };

/** A random opaque id: 16 bytes, base64url. */
export function newId(prefix: string): string {
  return prefix + randomBytes(16).toString('base64url');
}

/**
 * Conversations: opening direct ones and groups (group-committed, like sends), membership and
 * roles, consent, and the views of conversations. Messaging builds sending and reading on it.
 */
export class Conversations {
  /** Conversations being opened: many at once go in one transaction, like sends. */
  private readonly opens: GroupCommit<NewConversation, OpenOutcome>;
  /** Conversation id → what never changes about it (kind, wrapped key); bounded. */
  protected readonly meta = new LRUCache<string, Pick<ConversationRow, 'id' | 'kind' | 'wrapped_key'>>({ max: META_LIMIT });

  constructor(
    protected readonly store: Store,
    protected readonly keys: Keyring,
    protected readonly notifier: Notifier,
    protected readonly log: Logger,
  ) {
    this.opens = new GroupCommit(async (items) => {
      const { outcomes, heads } = await this.store.openBatch(items);
      this.notifier.wake(heads);
      return outcomes;
    });
  }

  /** The conversation if the user is a member: 404 when it does not exist, 403 when not a member. */
  async requireMember(conversationId: unknown, user: Principal): Promise<MemberConversation> {
    if (typeof conversationId !== 'string' || conversationId.length > 64) throw errors.notFound('conversation');
    const found = await this.store.conversationFor(conversationId, user.id);
    if (!found) throw errors.notFound('conversation');
    if (!found.member) throw errors.forbidden('you are not a member of this conversation');
    this.remember(found.conversation);
    return { ...found.conversation, ...found.member };
  }

  /** The group if my role in it is one of `allowed` (403 otherwise); `what` names the action in the errors. */
  protected async requireRole(conversationId: unknown, me: Principal, allowed: readonly Role[], what: string): Promise<MemberConversation> {
    const conv = await this.requireMember(conversationId, me);
    if (conv.kind !== 'group') throw errors.badRequest(`${what} only in groups`, 'not_a_group');
    if (!allowed.includes(conv.role)) throw errors.forbidden(`only the group's ${allowed.join(' and ')}s may ${what}`);
    return conv;
  }

  /**
   * The group if I may add members to it (and manage its invite links): its owner and admins, or
   * every member when its `who_can_add` is `members`. 403 otherwise.
   */
  async requireAdder(conversationId: unknown, me: Principal): Promise<MemberConversation> {
    const conv = await this.requireMember(conversationId, me);
    if (conv.kind !== 'group') throw errors.badRequest('members are added only to groups', 'not_a_group');
    if (!mayAdd(conv.role, conv.who_can_add)) throw errors.forbidden("only the group's owner and admins may add members");
    return conv;
  }

  protected remember(conv: Pick<ConversationRow, 'id' | 'kind' | 'wrapped_key'>): void {
    this.meta.set(conv.id, { id: conv.id, kind: conv.kind, wrapped_key: conv.wrapped_key });
  }

  /** The unchanging part of a conversation, from this node's cache or the database. */
  protected async metaOf(id: string): Promise<Pick<ConversationRow, 'id' | 'kind' | 'wrapped_key'> | null> {
    const hit = this.meta.get(id);
    if (hit) return hit;
    const conv = await this.store.conversation(id);
    if (conv) this.remember(conv);
    return conv;
  }

  /** The data key of a conversation. */
  keyOf(conv: Pick<ConversationRow, 'id' | 'wrapped_key'>): Buffer {
    return this.keys.key(conv.id, conv.wrapped_key);
  }

  /** The direct conversation with another user, created when missing. */
  async openDirect(me: Principal, rawName: unknown): Promise<{ conversation: ConversationView; created: boolean }> {
    const { id, created, other } = await this.directId(me, rawName);
    if (!created) return { conversation: (await this.views(me, [id]))[0]!, created };
    // Just created by this request: its view is known without reading it back
    return { conversation: { id, kind: 'direct', title: null, members: byName([me.name, other]) }, created };
  }

  /** The id of the direct conversation with another user, created when missing (no view: BOSH only needs the id). */
  async directId(me: Principal, rawName: unknown): Promise<{ id: string; created: boolean; other: string }> {
    const name = normaliseName(rawName);
    if (name === me.name) throw errors.badRequest('a direct conversation needs another user', 'self_conversation');
    const other = await this.store.userByName(name);
    if (!other) throw errors.notFound('user');
    const otherId = Number(other.id);
    const existing = await this.store.directConversation(me.id, otherId);
    if (existing) {
      this.remember(existing);
      if (!existing.member) {
        // I declined it once: opening it myself brings me back (consenting), reading from now on
        const { heads } = await this.store.changeMembers(existing.id, { add: me.id, accepted: true });
        this.notifier.wake(heads);
      }
      return { id: existing.id, created: false, other: name };
    }
    const id = newId('d');
    const { wrapped } = this.keys.create(id);
    const outcome = await this.opens.submit({ id, kind: 'direct', title: null, wrappedKey: wrapped, ownerId: me.id, memberIds: [me.id, otherId] });
    // Not created: the other user (or this one, elsewhere) opened it a moment earlier
    if (outcome.created) this.remember({ id, kind: 'direct', wrapped_key: wrapped });
    return { id: outcome.id, created: outcome.created, other: name };
  }

  /** Create a group with me and the named members. */
  async createGroup(me: Principal, rawTitle: unknown, rawMembers: unknown, rawHistory?: unknown): Promise<ConversationView> {
    const history = historyOf(rawHistory ?? 'joined');
    const title = titleOf(rawTitle);
    const list = typeof rawMembers === 'string' ? rawMembers.split(',') : rawMembers;
    if (!Array.isArray(list)) throw errors.badRequest('members must be a list of names', 'bad_members');
    const names = [...new Set(list.map((n) => normaliseName(n)))].filter((n) => n !== me.name);
    if (names.length + 1 > MAX_MEMBERS) throw errors.badRequest(`a group has at most ${MAX_MEMBERS} members`, 'bad_members');
    const users = await this.store.usersByNames(names);
    // Not which ones: one request must not probe hundreds of names at once
    if (users.length !== names.length) throw errors.notFound('one or more members');
    const id = newId('g');
    const { wrapped } = this.keys.create(id);
    await this.opens.submit({ id, kind: 'group', title, wrappedKey: wrapped, ownerId: me.id, memberIds: [me.id, ...users.map((u) => Number(u.id))], history });
    this.remember({ id, kind: 'group', wrapped_key: wrapped });
    return { id, kind: 'group', title, members: byName([me.name, ...names]), owner: me.name, admins: [], history, who_can_add: 'admins' };
  }

  /**
   * Add a member to a group: its owner and admins may, and every member when the group's
   * `who_can_add` is `members`. What the newcomer reads follows the group's setting: from now on
   * (the default), or its whole history.
   */
  async addMember(me: Principal, conversationId: unknown, rawName: unknown): Promise<void> {
    const conv = await this.requireAdder(conversationId, me);
    const user = await this.store.userByName(normaliseName(rawName));
    if (!user) throw errors.notFound('user');
    const { heads, full } = await this.store.changeMembers(conv.id, { add: Number(user.id), max: MAX_MEMBERS });
    if (full) throw groupFull();
    this.notifier.wake(heads);
  }

  /**
   * Join a group by myself (an invite link): joining is consent. Its view; 409 `group_full` when
   * it already has MAX_MEMBERS. Already a member: nothing changes (I accept it, if I had not).
   */
  async join(me: Principal, conversationId: string): Promise<ConversationView> {
    const { heads, changed, full } = await this.store.changeMembers(conversationId, { add: me.id, accepted: true, max: MAX_MEMBERS });
    if (full) throw groupFull();
    this.notifier.wake(heads);
    if (!changed) await this.accept(me, conversationId);
    return (await this.views(me, [conversationId]))[0]!;
  }

  /**
   * I leave a group (change `member_left`). When I was its owner, ownership passes to the
   * longest-standing admin, else the longest-standing member; the last member leaving leaves it
   * empty, readable by no one.
   */
  async leave(me: Principal, conversationId: unknown): Promise<void> {
    const conv = await this.requireMember(conversationId, me);
    if (conv.kind !== 'group') throw errors.badRequest('only groups are left; decline a direct conversation', 'not_a_group');
    const { heads } = await this.store.changeMembers(conv.id, { remove: me.id, left: true });
    this.notifier.wake(heads);
  }

  /** Hand my group to another member (change `owner_changed`): the owner may; they become an admin. */
  async transferOwnership(me: Principal, conversationId: unknown, rawName: unknown): Promise<void> {
    const conv = await this.requireRole(conversationId, me, ['owner'], 'transfer ownership');
    const name = normaliseName(rawName);
    if (name === me.name) throw errors.badRequest('you already own this group', 'bad_name');
    const target = (await this.store.members([conv.id])).find((m) => m.name === name);
    if (!target) throw errors.notFound('member');
    const { heads, changed } = await this.store.transferOwnership(conv.id, me.id, target.userId);
    // Not changed: I stopped being the owner, or they left, a moment ago
    if (!changed) throw errors.conflict('the group changed meanwhile; try again', 'conflict');
    this.notifier.wake(heads);
  }

  /**
   * Change a group's title (its owner and admins may; change `renamed`) and settings (its owner
   * may: `history`, `who_can_add`; change `settings_changed`). At least one field; every field
   * given must be mine to change, or nothing changes. Its view.
   */
  async changeSettings(
    me: Principal,
    conversationId: unknown,
    change: { title?: unknown; history?: unknown; who_can_add?: unknown },
  ): Promise<ConversationView> {
    const title = change.title === undefined ? undefined : titleOf(change.title);
    const history = change.history === undefined ? undefined : historyOf(change.history);
    const whoCanAdd = change.who_can_add === undefined ? undefined : whoCanAddOf(change.who_can_add);
    if (title === undefined && history === undefined && whoCanAdd === undefined) {
      throw errors.badRequest('give `title`, `history` or `who_can_add`', 'bad_settings');
    }
    const settings = history !== undefined || whoCanAdd !== undefined;
    const conv = await this.requireRole(conversationId, me, settings ? ['owner'] : ['owner', 'admin'], settings ? 'change settings' : 'rename it');
    const { heads } = await this.store.changeGroup(conv.id, { title, history, whoCanAdd });
    this.notifier.wake(heads);
    return (await this.views(me, [conv.id]))[0]!;
  }

  /**
   * Remove a member from a group: anyone may leave; the owner removes anyone, an admin removes
   * plain members.
   */
  async removeMember(me: Principal, conversationId: unknown, rawName: unknown): Promise<void> {
    const conv = await this.requireMember(conversationId, me);
    if (conv.kind !== 'group') throw errors.badRequest('members can only be removed from groups', 'not_a_group');
    const name = normaliseName(rawName);
    const members = await this.store.members([conv.id]);
    const target = members.find((m) => m.name === name);
    if (!target) throw errors.notFound('member');
    const left = target.userId === me.id;
    if (!left && !(conv.role === 'owner' || (conv.role === 'admin' && target.role === 'member'))) {
      throw errors.forbidden("only the group's owner removes admins, and only the owner and admins remove members");
    }
    const { heads } = await this.store.changeMembers(conv.id, { remove: target.userId, left });
    this.notifier.wake(heads);
  }

  /**
   * I consent to a conversation someone else opened or added me to: I now share my presence, last
   * seen and receipts with its members (sending a message in it does the same).
   */
  async accept(me: Principal, conversationId: unknown): Promise<void> {
    const conv = await this.requireMember(conversationId, me);
    const { heads } = await this.store.accept(conv.id, me.id, me.name);
    this.notifier.wake(heads);
  }

  /**
   * I decline a conversation: I leave it (a direct one too), and its members see nothing more of
   * me. Opening that direct conversation again myself brings me back, from then on.
   */
  async decline(me: Principal, conversationId: unknown): Promise<void> {
    const conv = await this.requireMember(conversationId, me);
    // Declining a group is leaving it (its owner's ownership passes on, as when leaving)
    const { heads } = await this.store.changeMembers(conv.id, { remove: me.id, left: conv.kind === 'group' });
    this.notifier.wake(heads);
  }

  /** Make a member of my group an admin, or a plain member again: the owner may. */
  async setAdmin(me: Principal, conversationId: unknown, rawName: unknown, admin: boolean): Promise<void> {
    const conv = await this.requireRole(conversationId, me, ['owner'], 'change roles');
    const target = (await this.store.members([conv.id])).find((m) => m.name === normaliseName(rawName));
    if (!target) throw errors.notFound('member');
    if (target.role === 'owner') throw errors.badRequest('the owner is not an admin', 'bad_role');
    const { heads } = await this.store.setRole(conv.id, target.userId, admin ? 'admin' : 'member');
    this.notifier.wake(heads);
  }

  /** Change what members who join my group later may read (`joined` or `all`): the owner may. */
  async setHistory(me: Principal, conversationId: unknown, rawHistory: unknown): Promise<ConversationView> {
    return this.changeSettings(me, conversationId, { history: rawHistory });
  }

  /** The kinds of some conversations (unknown ids left out), from this node's cache or the database. */
  async kindsOf(ids: readonly string[]): Promise<Map<string, 'direct' | 'group'>> {
    const out = new Map<string, 'direct' | 'group'>();
    for (const id of new Set(ids)) {
      const meta = await this.metaOf(id);
      if (meta) out.set(id, meta.kind);
    }
    return out;
  }

  /**
   * Views of some conversations (for events and creation answers). Of a conversation I am no
   * longer a member of, only its id and kind: who is in it and what it is called now is not mine
   * to see (an old stream entry replayed after my removal must not show it).
   */
  async views(me: Principal, ids: readonly string[]): Promise<ConversationView[]> {
    const unique = [...new Set(ids)];
    const members = await this.store.members(unique);
    const out: ConversationView[] = [];
    for (const id of unique) {
      const conv = await this.store.conversation(id);
      if (!conv) continue;
      const mine = members.filter((m) => m.conversationId === id);
      if (!mine.some((m) => m.userId === me.id)) {
        out.push({ id, kind: conv.kind, title: null, members: [] });
        continue;
      }
      const view: ConversationView = { id, kind: conv.kind, title: conv.title, members: mine.map((m) => m.name) };
      if (conv.kind === 'group') Object.assign(view, rolesOf(mine), { history: conv.history, who_can_add: conv.who_can_add });
      out.push(view);
    }
    return out;
  }
}

/** Whether a member with this role may add members to a group with this `who_can_add`. */
export function mayAdd(role: Role, whoCanAdd: WhoCanAdd): boolean {
  return role === 'owner' || role === 'admin' || whoCanAdd === 'members';
}

function groupFull() {
  return errors.conflict(`a group has at most ${MAX_MEMBERS} members`, 'group_full');
}

/** A group's title from input: 1-100 characters once trimmed. */
function titleOf(raw: unknown): string {
  const title = typeof raw === 'string' ? raw.trim() : '';
  if (title.length < 1 || title.length > 100) throw errors.badRequest('title must be 1-100 characters', 'bad_title');
  return title;
}

/** Who may add members, from input: `admins` or `members`. */
function whoCanAddOf(raw: unknown): WhoCanAdd {
  if (raw === 'admins' || raw === 'members') return raw;
  throw errors.badRequest('who_can_add must be "admins" or "members"', 'bad_who_can_add');
}

/** A group's history setting from input: `joined` or `all`. */
function historyOf(raw: unknown): 'joined' | 'all' {
  if (raw === 'joined' || raw === 'all') return raw;
  throw errors.badRequest('history must be "joined" or "all"', 'bad_history');
}
