import type { Logger } from 'pino';
import { hasContent, type MemberPosition, type NewMessage, type SendOutcome, type Singles, type Store, type StoredMessage } from '../store/store.js';
import type { Principal } from './accounts.js';
import type { Archive } from './archive.js';
import type { MessageChanges } from './changes.js';
import { Conversations, newId } from './conversations.js';
import { errors } from './errors.js';
import { GroupCommit } from './group-commit.js';
import type { Keyring } from './keys.js';
import type { Notifier } from './notifier.js';
import { receiptEvents } from './receipts.js';
import { rolesOf, viewOf, type ConversationView, type MessageView } from './views.js';

export { MAX_MEMBERS, newId, type MemberConversation } from './conversations.js';
export { statusOf, type ConversationView, type MessageView } from './views.js';

/** Longest message text, characters. */
export const MAX_TEXT = 16_000;
/** Longest client_id. */
const MAX_CLIENT_ID = 128;
/** History pages: default and largest size. */
export const HISTORY_DEFAULT = 50;
export const HISTORY_MAX = 200;
/** Conversation list pages: default and largest size. */
export const LIST_MAX = 500;

/** What a send needs besides the conversation. */
export interface SendInput {
  text?: unknown;
  clientId?: unknown;
  /** Set by the files route: the attachment of an uploaded file. */
  attachment?: Record<string, unknown> | null;
  /** Set by the bots: the name of the bot token or webhook the message is posted through. */
  bot?: string | null;
  /** The id of the message this one replies to (issue 13). */
  replyTo?: unknown;
}

/** Conversations and messages: sending (group-committed), history, read positions, typing, rendering. */
export class Messaging extends Conversations {
  private readonly sends: GroupCommit<NewMessage, SendOutcome>;
  /** Plain texts of the messages being committed, by message id (for carried wake-ups). */
  private readonly texts = new Map<string, string>();
  /** The reply_to views of the messages being committed, by message id (for carried wake-ups). */
  private readonly replies = new Map<string, NonNullable<MessageView['reply_to']>>();
  /** Edits, deletes, replies and reactions, laid over every rendered message (set by Core). */
  changes: MessageChanges | undefined;

  constructor(
    store: Store,
    keys: Keyring,
    notifier: Notifier,
    /** Old messages moved out of the table; history and stream replays read through it. */
    readonly archive: Archive,
    log: Logger,
    private readonly onSent: (n: number) => void = () => undefined,
  ) {
    super(store, keys, notifier, log.child({ module: 'messaging' }));
    this.sends = new GroupCommit(async (items) => {
      const { outcomes, heads, echoes, singles } = await this.store.sendBatch(items);
      this.notifier.wake(heads, echoes, this.carried(outcomes, singles));
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
        events.set(userId, { type: 'message', message: this.withReply(viewOf(m, text, userId, conv.kind, [])) });
        continue;
      }
      let event = forOthers.get(m.id);
      if (!event) forOthers.set(m.id, (event = { type: 'message', message: this.withReply(viewOf(m, text, userId, conv.kind, [])) }));
      events.set(userId, event);
    }
    return events;
  }

  /** A new message's view with the reply_to it is being sent with. */
  private withReply(view: MessageView): MessageView {
    const reply = this.replies.get(view.id);
    if (reply) view.reply_to = reply;
    return view;
  }

  /** The key of a conversation (for the texts laid over messages), null when it is gone. */
  async keyFor(conversationId: string): Promise<Buffer | null> {
    const conv = await this.metaOf(conversationId);
    return conv ? this.keyOf(conv) : null;
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
    const hasReply = input.replyTo !== undefined && input.replyTo !== null && input.replyTo !== '';
    if (hasReply && !this.changes) throw errors.badRequest('replies are not available', 'bad_reply_to');
    // Recorded before the send commits (an unsent message's row is forgotten below)
    const reply = hasReply ? await this.changes!.prepareReply(me, conv.id, id, input.replyTo) : undefined;
    if (reply) this.replies.set(id, reply);
    const body = this.keys.sealText(this.keyOf(conv), conv.id, id, text);
    this.texts.set(id, text); // for the wake-ups of its batch
    let outcome: SendOutcome | undefined;
    try {
      outcome = await this.sends.submit({
        id,
        conversationId: conv.id,
        senderId: me.id,
        device: me.device ?? null,
        body,
        clientId,
        attachment: input.attachment ?? null,
        // A bot token's sends carry its name, as a webhook's do
        bot: input.bot ?? me.bot?.name ?? null,
      });
    } finally {
      this.texts.delete(id);
      this.replies.delete(id);
      if (hasReply && !(outcome?.ok && outcome.created)) await this.changes!.forgetReply(conv.id, id);
    }
    if (!outcome.ok) {
      throw outcome.reason === 'not_member' ? errors.forbidden('you are not a member of this conversation') : errors.notFound('conversation');
    }
    if (outcome.created) this.onSent(1);
    // Just committed: nobody has it yet, so its status is "sent" without asking the database.
    const [view] = await this.renderMessages(me, [outcome.message], outcome.created);
    // A new message has no changes yet but its reply (rendered fresh, without reading them)
    if (outcome.created && reply) view!.reply_to = reply;
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

  /**
   * My conversations as the API lists them, most recently active first, a page at a time: at most
   * `limit` (default and most: 500), after the `before` cursor a previous page gave as `next`.
   */
  async list(me: Principal, page: { limit?: unknown; before?: unknown } = {}): Promise<{ conversations: ConversationView[]; next: string | null }> {
    const limit = page.limit === undefined || page.limit === '' ? LIST_MAX : Number(page.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > LIST_MAX) throw errors.badRequest(`limit must be 1-${LIST_MAX}`, 'bad_limit');
    let after: { at: number; id: string } | null = null;
    if (page.before !== undefined && page.before !== '') {
      const m = typeof page.before === 'string' ? /^(\d{1,15})\.([\w-]{1,64})$/.exec(page.before) : null;
      if (!m) throw errors.badRequest('before must be the `next` of an earlier page', 'bad_before');
      after = { at: Number(m[1]), id: m[2]! };
    }
    // One order for every page: by last message, newest first (those without one last), then by id
    const rows = (await this.store.conversationsOf(me.id))
      .map((r) => ({ ...r, at: r.lastMessage?.sentAt.getTime() ?? 0 }))
      .sort((a, b) => b.at - a.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .filter((r) => !after || r.at < after.at || (r.at === after.at && r.id > after.id));
    const shown = rows.slice(0, limit);
    const lastMessages = shown.map((r) => r.lastMessage).filter((m): m is StoredMessage => m !== null);
    const rendered = new Map((await this.renderMessages(me, lastMessages)).map((m) => [m.conversation, m]));
    const conversations = shown.map((r) => ({
      id: r.id,
      kind: r.kind,
      title: r.title,
      members: r.roster.map((m) => m.name),
      ...(r.kind === 'group' ? { ...rolesOf(r.roster), history: r.history, who_can_add: r.whoCanAdd } : {}),
      accepted: r.accepted,
      unread: r.unread,
      last_message: rendered.get(r.id) ?? null,
    }));
    const last = shown[shown.length - 1];
    return { conversations, next: rows.length > limit && last ? `${last.at}.${last.id}` : null };
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
        if (hasContent(m)) text = this.keys.openText(key, m.conversationId, m.id, m.body);
      } catch (err) {
        this.log.error({ err, message: m.id }, 'message failed to open: wrong key or tampered row');
        text = '';
      }
      out.push(viewOf(m, text, me.id, conv.kind, byConv.get(m.conversationId) ?? []));
    }
    // A message just sent has no edits, reactions or deletion yet: send adds its reply itself
    return this.changes && !fresh ? this.changes.apply(me, messages, out) : out;
  }}
