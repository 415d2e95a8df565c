import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ConversationRow, MemberPosition, Role, Store, StoredMessage } from '../store/store.js';
import type { Principal } from './accounts.js';
import { normaliseName } from './accounts.js';
import { errors } from './errors.js';
import { GroupCommit } from './group-commit.js';
import { receiptEvents } from './receipts.js';
import type { Archive } from './archive.js';
import type { Keyring } from './keys.js';
import type { Notifier } from './notifier.js';
import type { NewConversation, NewMessage, OpenOutcome, SendOutcome, Singles } from '../store/store.js';

/** Longest message text, characters. */
export const MAX_TEXT = 16_000;
/** Largest group. */
export const MAX_MEMBERS = 500;
/** Longest client_id. */
const MAX_CLIENT_ID = 128;
/** Conversations whose kind and wrapped key a node keeps in memory (a few hundred bytes each). */
const META_LIMIT = 50_000;
/** History pages: default and largest size. */
export const HISTORY_DEFAULT = 50;
export const HISTORY_MAX = 200;

/** A message as the API shows it. */
export interface MessageView {
  id: string;
  conversation: string;
  seq: number;
  from: string;
  text: string;
  attachment?: unknown;
  client_id?: string;
  sent_at: string;
  status?: 'sent' | 'delivered' | 'read';
  delivered_to?: string[];
  read_by?: string[];
}

/** A conversation as the API shows it. */
export interface ConversationView {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  members: string[];
  /** Groups: the owner, the admins, and what members who join later may read. */
  owner?: string | null;
  admins?: string[];
  history?: 'joined' | 'all';
  /** In my list: whether I consented to it (false: a request someone made of me). */
  accepted?: boolean;
  unread?: number;
  last_message?: MessageView | null;
}

/** What a send needs besides the conversation. */
export interface SendInput {
  text?: unknown;
  clientId?: unknown;
  /** Set by the files route: the attachment of an uploaded file. */
  attachment?: Record<string, unknown> | null;
}

/** A conversation as its member sees it: with their role and the seq after which they may read. */
export type MemberConversation = ConversationRow & { role: Role; fromSeq: number };

/** A random opaque id: 16 bytes, base64url. */
export function newId(prefix: string): string {
  return prefix + randomBytes(16).toString('base64url');
}

/** Conversations and messages: the heart of Parley. */
export class Messaging {
  private readonly sends: GroupCommit<NewMessage, SendOutcome>;
  /** Conversations being opened: many at once go in one transaction, like sends. */
  private readonly opens: GroupCommit<NewConversation, OpenOutcome>;
  private readonly log: Logger;
  /** Plain texts of the messages being committed, by message id (for carried wake-ups). */
  private readonly texts = new Map<string, string>();
  /** Conversation id → what never changes about it (kind, wrapped key); bounded. */
  private readonly meta = new Map<string, Pick<ConversationRow, 'id' | 'kind' | 'wrapped_key'>>();

  constructor(
    private readonly store: Store,
    private readonly keys: Keyring,
    private readonly notifier: Notifier,
    /** Old messages moved out of the table; history and stream replays read through it. */
    readonly archive: Archive,
    log: Logger,
    private readonly onSent: (n: number) => void = () => undefined,
  ) {
    this.log = log.child({ module: 'messaging' });
    this.sends = new GroupCommit(async (items) => {
      const { outcomes, heads, echoes, singles } = await this.store.sendBatch(items);
      this.notifier.wake(heads, echoes, this.carried(outcomes, singles));
      return outcomes;
    });
    this.opens = new GroupCommit(async (items) => {
      const { outcomes, heads } = await this.store.openBatch(items);
      this.notifier.wake(heads);
      return outcomes;
    });
  }

  /**
   * The events that travel with a batch's wake-ups: for each user whose only new entry is one of
   * the batch's new messages, that message as their poll would show it (the text is still in
   * memory; the sender sees its own with client_id and status "sent", as the send answered).
   */
  private carried(outcomes: readonly SendOutcome[], singles: Singles): Map<number, Record<string, unknown>> {
    const events = new Map<number, Record<string, unknown>>();
    if (singles.size === 0) return events;
    const bySeq = new Map<string, StoredMessage>();
    for (const o of outcomes) if (o.ok && o.created) bySeq.set(`${o.message.conversationId} ${o.message.seq}`, o.message);
    // Every member but the sender sees a message alike: one event per message serves them all
    // (and the notifier serialises it once).
    const forOthers = new Map<string, Record<string, unknown>>();
    for (const [userId, s] of singles) {
      const m = bySeq.get(`${s.conversationId} ${s.msgSeq}`);
      const text = m && this.texts.get(m.id);
      const conv = m && this.meta.get(m.conversationId);
      if (!m || text === undefined || !conv) continue;
      if (userId === m.senderId) {
        events.set(userId, { type: 'message', message: viewOf(m, text, userId, conv.kind, []) });
        continue;
      }
      let event = forOthers.get(m.id);
      if (!event) forOthers.set(m.id, (event = { type: 'message', message: viewOf(m, text, userId, conv.kind, []) }));
      events.set(userId, event);
    }
    return events;
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

  /** The group if I may manage its members (its owner or an admin): 403 otherwise. */
  private async requireManager(conversationId: unknown, me: Principal, what: string): Promise<MemberConversation> {
    const conv = await this.requireMember(conversationId, me);
    if (conv.kind !== 'group') throw errors.badRequest(`${what} only in groups`, 'not_a_group');
    if (conv.role === 'member') throw errors.forbidden(`only the group's owner and admins ${what}`);
    return conv;
  }

  private remember(conv: Pick<ConversationRow, 'id' | 'kind' | 'wrapped_key'>): void {
    if (this.meta.size >= META_LIMIT) this.meta.delete(this.meta.keys().next().value as string);
    this.meta.set(conv.id, { id: conv.id, kind: conv.kind, wrapped_key: conv.wrapped_key });
  }

  /** The unchanging part of a conversation, from this node's cache or the database. */
  private async metaOf(id: string): Promise<Pick<ConversationRow, 'id' | 'kind' | 'wrapped_key'> | null> {
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
    const title = typeof rawTitle === 'string' ? rawTitle.trim() : '';
    if (title.length < 1 || title.length > 100) throw errors.badRequest('title must be 1-100 characters', 'bad_title');
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
    return { id, kind: 'group', title, members: byName([me.name, ...names]), owner: me.name, admins: [], history };
  }

  /**
   * Add a member to a group: its owner and admins may. What the newcomer reads follows the group's
   * setting: from now on (the default), or its whole history.
   */
  async addMember(me: Principal, conversationId: unknown, rawName: unknown): Promise<void> {
    const conv = await this.requireManager(conversationId, me, 'add members');
    const user = await this.store.userByName(normaliseName(rawName));
    if (!user) throw errors.notFound('user');
    const count = (await this.store.members([conv.id])).length;
    if (count >= MAX_MEMBERS) throw errors.conflict(`a group has at most ${MAX_MEMBERS} members`, 'group_full');
    const { heads } = await this.store.changeMembers(conv.id, { add: Number(user.id) });
    this.notifier.wake(heads);
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
    if (target.userId !== me.id && !(conv.role === 'owner' || (conv.role === 'admin' && target.role === 'member'))) {
      throw errors.forbidden("only the group's owner removes admins, and only the owner and admins remove members");
    }
    const { heads } = await this.store.changeMembers(conv.id, { remove: target.userId });
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
    const { heads } = await this.store.changeMembers(conv.id, { remove: me.id });
    this.notifier.wake(heads);
  }

  /** Make a member of my group an admin, or a plain member again: the owner may. */
  async setAdmin(me: Principal, conversationId: unknown, rawName: unknown, admin: boolean): Promise<void> {
    const conv = await this.requireManager(conversationId, me, 'change roles');
    if (conv.role !== 'owner') throw errors.forbidden("only the group's owner makes admins");
    const target = (await this.store.members([conv.id])).find((m) => m.name === normaliseName(rawName));
    if (!target) throw errors.notFound('member');
    if (target.role === 'owner') throw errors.badRequest('the owner is not an admin', 'bad_role');
    const { heads } = await this.store.setRole(conv.id, target.userId, admin ? 'admin' : 'member');
    this.notifier.wake(heads);
  }

  /** Change what members who join my group later may read (`joined` or `all`): the owner may. */
  async setHistory(me: Principal, conversationId: unknown, rawHistory: unknown): Promise<ConversationView> {
    const conv = await this.requireManager(conversationId, me, 'change settings');
    if (conv.role !== 'owner') throw errors.forbidden("only the group's owner changes its settings");
    const { heads } = await this.store.setHistory(conv.id, historyOf(rawHistory));
    this.notifier.wake(heads);
    return (await this.views(me, [conv.id]))[0]!;
  }

  /** Send a text (and maybe an attachment). A client_id already used by me here returns the first message. */
  async send(me: Principal, conversationId: unknown, input: SendInput): Promise<{ message: MessageView; created: boolean }> {
    // A known conversation skips the membership query: the send transaction checks membership
    // itself, under the conversation's lock, and refuses a non-member there.
    const conv =
      (typeof conversationId === 'string' ? this.meta.get(conversationId) : undefined) ??
      (await this.requireMember(conversationId, me));
    const text = input.text === undefined || input.text === null ? '' : input.text;
    if (typeof text !== 'string') throw errors.badRequest('text must be a string', 'bad_text');
    if (text.length > MAX_TEXT) throw errors.tooLarge(`text is longer than ${MAX_TEXT} characters`);
    if (text.trim().length === 0 && !input.attachment) throw errors.badRequest('text is required', 'bad_text');
    let clientId: string | null = null;
    if (input.clientId !== undefined && input.clientId !== null && input.clientId !== '') {
      if (typeof input.clientId !== 'string' || input.clientId.length > MAX_CLIENT_ID) {
        throw errors.badRequest(`client_id must be a string of at most ${MAX_CLIENT_ID} characters`, 'bad_client_id');
      }
      clientId = input.clientId;
    }
    const id = newId('m');
    const body = this.keys.sealText(this.keyOf(conv), conv.id, id, text);
    this.texts.set(id, text); // for the wake-ups of its batch
    let outcome: SendOutcome;
    try {
      outcome = await this.sends.submit({
        id,
        conversationId: conv.id,
        senderId: me.id,
        device: me.device ?? null,
        body,
        clientId,
        attachment: input.attachment ?? null,
      });
    } finally {
      this.texts.delete(id);
    }
    if (!outcome.ok) {
      throw outcome.reason === 'not_member' ? errors.forbidden('you are not a member of this conversation') : errors.notFound('conversation');
    }
    if (outcome.created) this.onSent(1);
    // Just committed: nobody has it yet, so its status is "sent" without asking the database.
    const [view] = await this.renderMessages(me, [outcome.message], outcome.created);
    return { message: view!, created: outcome.created };
  }

  /** A page of history: at most limit messages with seq < before, oldest first, archived ones included. */
  async history(me: Principal, conversationId: unknown, rawBefore: unknown, rawLimit: unknown): Promise<MessageView[]> {
    const conv = await this.requireMember(conversationId, me);
    const before = rawBefore === undefined || rawBefore === '' ? Number.MAX_SAFE_INTEGER : Number(rawBefore);
    if (!Number.isSafeInteger(before) || before < 0) throw errors.badRequest('before must be a sequence number', 'bad_before');
    const limit = rawLimit === undefined || rawLimit === '' ? HISTORY_DEFAULT : Number(rawLimit);
    if (!Number.isInteger(limit) || limit < 1) throw errors.badRequest('limit must be a positive integer', 'bad_limit');
    // Nothing from before I joined (a group that shows newcomers only what follows)
    if (before <= conv.fromSeq + 1) return [];
    const rows = await this.archive.history(conv.id, before, Math.min(limit, HISTORY_MAX));
    return this.renderMessages(me, rows.filter((m) => m.seq > conv.fromSeq));
  }

  /** I have read a conversation up to a seq. */
  async markRead(me: Principal, conversationId: unknown, rawUpTo: unknown): Promise<void> {
    const conv = await this.requireMember(conversationId, me);
    const upTo = Number(rawUpTo);
    if (!Number.isSafeInteger(upTo) || upTo < 0) throw errors.badRequest('up_to must be a sequence number', 'bad_up_to');
    const { heads, singles } = await this.store.markRead(me.id, me.name, conv.id, Math.min(upTo, conv.last_seq));
    this.notifier.wake(heads, undefined, receiptEvents(singles));
  }

  /** I am typing: an ephemeral event to the other members' parked requests, not stored. */
  async typing(me: Principal, conversationId: unknown): Promise<void> {
    const conv = await this.requireMember(conversationId, me);
    const members = await this.store.members([conv.id]);
    this.notifier.ephemeral(
      members.filter((m) => m.userId !== me.id).map((m) => m.userId),
      { type: 'typing', conversation: conv.id, user: me.name, at: new Date().toISOString() },
    );
  }

  /** My conversations as the API lists them. */
  async list(me: Principal): Promise<ConversationView[]> {
    const rows = await this.store.conversationsOf(me.id);
    const lastMessages = rows.map((r) => r.lastMessage).filter((m): m is StoredMessage => m !== null);
    const rendered = new Map((await this.renderMessages(me, lastMessages)).map((m) => [m.conversation, m]));
    return rows.map((r) => ({
      id: r.id,
      kind: r.kind,
      title: r.title,
      members: r.members,
      ...(r.kind === 'group' ? { owner: r.owner, admins: r.admins, history: r.history } : {}),
      accepted: r.accepted,
      unread: r.unread,
      last_message: rendered.get(r.id) ?? null,
    }));
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
      if (conv.kind === 'group') {
        view.owner = mine.find((m) => m.role === 'owner')?.name ?? null;
        view.admins = mine.filter((m) => m.role === 'admin').map((m) => m.name);
        view.history = conv.history;
      }
      out.push(view);
    }
    return out;
  }

  /**
   * Render stored messages for a viewer: open the text and, for the viewer's own messages, work
   * out the status from the other members' positions (in groups the least advanced member).
   */
  async renderMessages(me: Principal, messages: readonly StoredMessage[], fresh = false): Promise<MessageView[]> {
    if (messages.length === 0) return [];
    const mine = fresh ? [] : [...new Set(messages.filter((m) => m.senderId === me.id).map((m) => m.conversationId))];
    const positions = await this.store.members(mine);
    const byConv = new Map<string, MemberPosition[]>();
    for (const p of positions) {
      if (p.userId === me.id) continue;
      const list = byConv.get(p.conversationId) ?? [];
      list.push(p);
      byConv.set(p.conversationId, list);
    }
    const out: MessageView[] = [];
    for (const m of messages) {
      const conv = await this.metaOf(m.conversationId);
      if (!conv) continue;
      const key = this.keyOf(conv);
      let text = '';
      try {
        // An empty body is a message emptied once delivered (RETENTION=until-delivered)
        if (m.body.length > 0) text = this.keys.openText(key, m.conversationId, m.id, m.body);
      } catch (err) {
        this.log.error({ err, message: m.id }, 'message failed to open: wrong key or tampered row');
        text = '';
      }
      out.push(viewOf(m, text, me.id, conv.kind, byConv.get(m.conversationId) ?? []));
    }
    return out;
  }
}

/** A group's history setting from input: `joined` or `all`. */
function historyOf(raw: unknown): 'joined' | 'all' {
  if (raw === 'joined' || raw === 'all') return raw;
  throw errors.badRequest('history must be "joined" or "all"', 'bad_history');
}

/** Member names in the order the store lists them (byte order, as ORDER BY name COLLATE "C"). */
function byName(names: string[]): string[] {
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A message as `viewer` sees it: their own with client_id and status (from the others' positions). */
function viewOf(m: StoredMessage, text: string, viewer: number, kind: 'direct' | 'group', others: readonly MemberPosition[]): MessageView {
  const view: MessageView = {
    id: m.id,
    conversation: m.conversationId,
    seq: m.seq,
    from: m.senderName,
    text,
    sent_at: m.sentAt.toISOString(),
  };
  if (m.attachment) view.attachment = m.attachment;
  if (m.clientId !== null && m.senderId === viewer) view.client_id = m.clientId;
  if (m.senderId === viewer) Object.assign(view, statusOf(m.seq, others, kind));
  return view;
}

/** Status of a message of mine from the other members' positions. */
export function statusOf(
  seq: number,
  others: readonly MemberPosition[],
  kind: 'direct' | 'group',
): Pick<MessageView, 'status' | 'delivered_to' | 'read_by'> {
  // A member who joined after the message never gets it: they do not hold its status back. One
  // who has not consented to the conversation shares no read receipts (delivered is the server's
  // own fact: a device of theirs has it).
  others = others.filter((o) => o.fromSeq < seq).map((o) => (o.accepted ? o : { ...o, readSeq: 0 }));
  const deliveredTo = others.filter((o) => o.deliveredSeq >= seq).map((o) => o.name);
  const readBy = others.filter((o) => o.readSeq >= seq).map((o) => o.name);
  const status =
    others.length > 0 && readBy.length === others.length
      ? 'read'
      : others.length > 0 && deliveredTo.length === others.length
        ? 'delivered'
        : 'sent';
  return kind === 'group' ? { status, delivered_to: deliveredTo, read_by: readBy } : { status };
}
