import type { Logger } from 'pino';
import type { Blobs } from '../blobs/blobs.js';
import {
  changeKey,
  hasContent,
  type ChangeRecipients,
  type MessageChangeRow,
  type ReactionRows,
  type Store,
  type StoredMessage,
  type StreamEntry,
} from '../store/store.js';
import type { Principal } from './accounts.js';
import { errors } from './errors.js';
import type { MessageChangedEvent } from './events.js';
import type { Keyring } from './keys.js';
import { MAX_TEXT, type MemberConversation, type Messaging } from './messaging.js';
import type { Notifier } from './notifier.js';
import type { MessageView } from './views.js';

/** A quoted message's text is cut to this many characters in the reply's view. */
export const QUOTE_MAX = 200;
/** An emoji (a reaction): 1 to 16 characters (code points), no whitespace. */
export const EMOJI_MAX = 16;
/** Longest message id a route takes (ids are "m" and 22 base64url characters). */
const MESSAGE_ID_MAX = 64;

/** What a change does to one user's reactions. */
export interface ReactionChange {
  add?: readonly string[];
  remove?: readonly string[];
  /** Make the user's set exactly `add` (XEP-0444: an incoming set replaces the user's set). */
  set?: boolean;
}

/** Check an emoji as the API takes it: 400 bad_emoji otherwise. */
export function checkEmoji(raw: unknown): string {
  if (typeof raw !== 'string') throw errors.badRequest('emoji must be a string', 'bad_emoji');
  const n = [...raw].length;
  if (n < 1 || n > EMOJI_MAX || /\s/u.test(raw)) {
    throw errors.badRequest(`emoji must be 1-${EMOJI_MAX} characters without whitespace`, 'bad_emoji');
  }
  return raw;
}

/** The first `max` characters (code points, so no emoji is cut in half). */
function cut(text: string, max: number): string {
  return text.length <= max ? text : [...text].slice(0, max).join('');
}

/**
 * What happens to a message after it was sent: edits (with their history), deletes for everyone,
 * replies and reactions (server/store/message-changes.ts keeps them beside the messages, so
 * archived messages change too), and laying them over messages as they are rendered. Every
 * change appends a `message_changed` entry to each reader's stream; a poll renders the message
 * as it is then. Texts are sealed with the conversation key, as message bodies are.
 */
export class MessageChanges {
  private readonly log: Logger;
  /** Conversation keys, for opening edited and quoted texts while rendering (bounded: cleared when large). */
  private readonly keyCache = new Map<string, Buffer>();
  constructor(
    private readonly store: Store,
    private readonly keys: Keyring,
    private readonly notifier: Notifier,
    private readonly messaging: Messaging,
    private readonly blobs: Blobs,
    log: Logger,
  ) {
    this.log = log.child({ module: 'changes' });
  }

  /** A message of a conversation I am in and may read (in the table or archived): 404 otherwise. */
  async target(me: Principal, conversationId: unknown, messageId: unknown): Promise<{ conv: MemberConversation; message: StoredMessage }> {
    const conv = await this.messaging.requireMember(conversationId, me);
    const message = await this.readable(conv, messageId);
    if (!message) throw errors.notFound('message');
    return { conv, message };
  }

  /** A message of this conversation that its member may read (from the table or the archive), or null. */
  private async readable(conv: MemberConversation, messageId: unknown): Promise<StoredMessage | null> {
    if (typeof messageId !== 'string' || messageId.length === 0 || messageId.length > MESSAGE_ID_MAX) return null;
    const message = (await this.store.messageById(conv.id, messageId)) ?? (await this.messaging.archive.findById(conv.id, messageId));
    return message && message.seq > conv.fromSeq ? message : null;
  }

  /** Every member who may read the message: who gets its changes. */
  private async recipients(conv: MemberConversation, message: StoredMessage, me: Principal): Promise<ChangeRecipients> {
    const members = await this.store.members([conv.id]);
    return { userIds: members.filter((m) => m.fromSeq < message.seq).map((m) => m.userId), senderId: message.senderId, seq: message.seq, by: me.name };
  }

  /** The message as I see it now. */
  private async viewFor(me: Principal, message: StoredMessage): Promise<MessageView> {
    const [view] = await this.messaging.renderMessages(me, [message]);
    if (!view) throw errors.notFound('message');
    return view;
  }

  /**
   * A new message of mine will reply to `replyTo`: check it (a message of this conversation I
   * may read; 400 bad_reply_to otherwise) and record the reply before the send commits. Resolves
   * the reply_to of the new message's view.
   */
  async prepareReply(me: Principal, conversationId: string, messageId: string, replyTo: unknown): Promise<NonNullable<MessageView['reply_to']>> {
    if (typeof replyTo !== 'string' || replyTo.length === 0 || replyTo.length > MESSAGE_ID_MAX) {
      throw errors.badRequest('reply_to must be the id of a message of this conversation', 'bad_reply_to');
    }
    const conv = await this.messaging.requireMember(conversationId, me);
    const target = await this.readable(conv, replyTo);
    if (!target) throw errors.badRequest('reply_to must be the id of a message of this conversation that you may read', 'bad_reply_to');
    await this.store.recordReply(conv.id, messageId, target.id, target.seq);
    const [quoted] = await this.quotes([target]);
    if (!quoted) return { id: target.id, from: target.senderName, text: '' };
    const { conversation: _c, ...view } = quoted;
    return view;
  }

  /**
   * The id of a message an XMPP client names (XEP-0308/0424/0444/0461): a Parley message id (as
   * every stanza-id and every message from others carries), or the stanza id I sent it with (my
   * client_id). Null when neither is known here.
   */
  async resolve(me: Principal, conversationId: string, ref: string): Promise<string | null> {
    if (ref.length === 0 || ref.length > 128) return null;
    return this.store.messageIdByRef(conversationId, me.id, ref);
  }

  /** Forget the reply of a message that was not created. */
  async forgetReply(conversationId: string, messageId: string): Promise<void> {
    await this.store.forgetReply(conversationId, messageId).catch((err: unknown) => this.log.warn({ err }, 'could not forget a reply'));
  }

  /** Edit a message of mine: 403 when not mine, 409 deleted when deleted for everyone. */
  async edit(me: Principal, conversationId: unknown, messageId: unknown, rawText: unknown): Promise<MessageView> {
    if (typeof rawText !== 'string') throw errors.badRequest('text must be a string', 'bad_text');
    if (rawText.length > MAX_TEXT) throw errors.tooLarge(`text is longer than ${MAX_TEXT} characters`);
    if (rawText.trim().length === 0) throw errors.badRequest('text is required', 'bad_text');
    const { conv, message } = await this.target(me, conversationId, messageId);
    if (message.senderId !== me.id) throw errors.forbidden('only its sender may edit a message');
    const body = this.keys.sealText(this.messaging.keyOf(conv), conv.id, message.id, rawText);
    const { outcome, heads } = await this.store.editMessage(conv.id, message.id, message.body, body, await this.recipients(conv, message, me));
    if (outcome === 'deleted') throw errors.conflict('the message was deleted', 'deleted');
    this.notifier.wake(heads);
    return this.viewFor(me, message);
  }

  /** The earlier texts of a message, oldest first, each with when an edit replaced it. */
  async edits(me: Principal, conversationId: unknown, messageId: unknown): Promise<Array<{ text: string; edited_at: string }>> {
    const { conv, message } = await this.target(me, conversationId, messageId);
    const key = this.messaging.keyOf(conv);
    return (await this.store.editsOf(conv.id, message.id)).map((e) => ({
      text: this.open(key, conv.id, message.id, e.body),
      edited_at: e.replacedAt.toISOString(),
    }));
  }

  /**
   * Delete a message for everyone: its sender may, and in a group its owner and admins. Its file
   * goes too. Deleting a deleted message answers the tombstone again.
   */
  async remove(me: Principal, conversationId: unknown, messageId: unknown): Promise<MessageView> {
    const { conv, message } = await this.target(me, conversationId, messageId);
    const mayModerate = conv.kind === 'group' && (conv.role === 'owner' || conv.role === 'admin');
    if (message.senderId !== me.id && !mayModerate) {
      throw errors.forbidden(conv.kind === 'group' ? 'only its sender or the group owner and admins may delete a message' : 'only its sender may delete a message');
    }
    const emptied = this.keys.sealText(this.messaging.keyOf(conv), conv.id, message.id, '');
    const file = message.attachment as { id?: unknown } | null;
    const fileId = file && typeof file.id === 'string' ? file.id : null;
    const { deleted, blobKeys, heads } = await this.store.deleteMessage(conv.id, message.id, emptied, fileId, await this.recipients(conv, message, me));
    if (deleted) this.notifier.wake(heads);
    // After the commit: a blob whose delete fails is an orphan (npm run sweep-blobs), never a row without its blob
    for (const key of blobKeys) {
      await this.blobs.delete(key).catch((err: unknown) => this.log.error({ err, key }, 'could not remove a deleted message file'));
    }
    return this.viewFor(me, message);
  }

  /** Change my reactions on a message (add, remove, or set them): 409 deleted, 409 too_many_reactions. */
  async react(me: Principal, conversationId: unknown, messageId: unknown, change: ReactionChange): Promise<MessageView> {
    const add = (change.add ?? []).map(checkEmoji);
    const remove = (change.remove ?? []).map(checkEmoji);
    const { conv, message } = await this.target(me, conversationId, messageId);
    const { outcome, changed, heads } = await this.store.react(conv.id, message.id, me.id, { add, remove, set: change.set ?? false }, await this.recipients(conv, message, me));
    if (outcome === 'deleted') throw errors.conflict('the message was deleted', 'deleted');
    if (outcome === 'too_many') throw errors.conflict('at most 20 different reactions per message', 'too_many_reactions');
    if (changed) this.notifier.wake(heads);
    return this.viewFor(me, message);
  }

  /**
   * Lay the changes over rendered views (Messaging.renderMessages calls this): edited text and
   * edited_at, tombstones, reactions, reply_to. `stored` holds the messages the views came from.
   */
  async apply(me: Principal, stored: readonly StoredMessage[], views: MessageView[]): Promise<MessageView[]> {
    if (views.length === 0) return views;
    const byId = new Map(stored.map((m) => [m.id, m]));
    const { changes, reactions } = await this.store.changesOf(stored.map((m) => ({ conversationId: m.conversationId, messageId: m.id })));
    const quoted = await this.quotedOf([...changes.values()]);
    for (const view of views) {
      const m = byId.get(view.id);
      if (!m) continue;
      const k = changeKey(m.conversationId, m.id);
      this.overlay(view, m, changes.get(k), reactions.get(k));
      const c = changes.get(k);
      if (c?.replyToId && !c.deletedAt) view.reply_to = quoted.get(changeKey(m.conversationId, c.replyToId)) ?? { id: c.replyToId, from: '', text: '' };
    }
    return views;
  }

  /** Edits, a tombstone and reactions on one view. */
  private overlay(view: MessageView, m: StoredMessage, c: MessageChangeRow | undefined, rx: ReactionRows | undefined): void {
    if (c?.deletedAt) {
      view.text = '';
      delete view.attachment;
      view.deleted = true;
      return;
    }
    if (c?.body) {
      const key = this.keyFor(m.conversationId);
      view.text = key ? this.open(key, m.conversationId, m.id, c.body) : '';
    }
    if (c?.editedAt) view.edited_at = c.editedAt.toISOString();
    if (rx && rx.length > 0) view.reactions = rx.map((r) => ({ emoji: r.emoji, users: [...r.users] }));
    if (!hasContent(m) && !c?.body) view.purged = true;
  }

  private keyFor(conversationId: string): Buffer | undefined {
    return this.keyCache.get(conversationId);
  }

  /** The reply_to views of the messages these changes quote, by changeKey of the quoted message. */
  private async quotedOf(changes: readonly MessageChangeRow[]): Promise<Map<string, NonNullable<MessageView['reply_to']>>> {
    for (const c of changes) await this.rememberKey(c.conversationId);
    const wanted = changes.filter((c) => c.replyToId && c.replyToSeq !== null).map((c) => ({ conversationId: c.conversationId, seq: c.replyToSeq! }));
    const out = new Map<string, NonNullable<MessageView['reply_to']>>();
    if (wanted.length === 0) return out;
    const inTable = await this.store.messagesAt(wanted);
    const have = new Set(inTable.map((m) => `${m.conversationId} ${m.seq}`));
    const archived = await this.messaging.archive.find(wanted.filter((w) => !have.has(`${w.conversationId} ${w.seq}`)));
    const targets = [...inTable, ...archived.values()];
    for (const { conversation, ...q } of await this.quotes(targets)) out.set(changeKey(conversation, q.id), q);
    return out;
  }

  /** Quotes of messages as a reply shows them (with their conversation, for keying). */
  private async quotes(targets: readonly StoredMessage[]): Promise<Array<NonNullable<MessageView['reply_to']> & { conversation: string }>> {
    if (targets.length === 0) return [];
    const { changes } = await this.store.changesOf(targets.map((m) => ({ conversationId: m.conversationId, messageId: m.id })));
    const out: Array<NonNullable<MessageView['reply_to']> & { conversation: string }> = [];
    for (const t of targets) {
      await this.rememberKey(t.conversationId);
      const key = this.keyFor(t.conversationId);
      const c = changes.get(changeKey(t.conversationId, t.id));
      if (c?.deletedAt) {
        out.push({ conversation: t.conversationId, id: t.id, from: t.senderName, text: '', deleted: true });
        continue;
      }
      const body = c?.body ?? (hasContent(t) ? t.body : null);
      const text = body && key ? this.open(key, t.conversationId, t.id, body) : '';
      out.push({ conversation: t.conversationId, id: t.id, from: t.senderName, text: cut(text, QUOTE_MAX) });
    }
    return out;
  }

  private async rememberKey(conversationId: string): Promise<void> {
    if (this.keyCache.has(conversationId)) return;
    const key = await this.messaging.keyFor(conversationId);
    if (key) {
      if (this.keyCache.size > 10_000) this.keyCache.clear();
      this.keyCache.set(conversationId, key);
    }
  }

  /** Open a sealed text; "" (logged) when it does not open. */
  private open(key: Buffer, conversationId: string, messageId: string, body: Buffer): string {
    if (body.length === 0) return '';
    try {
      return this.keys.openText(key, conversationId, messageId, body);
    } catch (err) {
      this.log.error({ err, message: messageId }, 'changed text failed to open: wrong key or tampered row');
      return '';
    }
  }

  /**
   * The message_changed events of stream entries, by entry seq: each message as `me` sees it now
   * (from the table or the archive; one no longer held renders no event).
   */
  async eventsFor(me: Principal, entries: readonly StreamEntry[]): Promise<Map<number, MessageChangedEvent>> {
    const out = new Map<number, MessageChangedEvent>();
    const mine = entries.filter((e) => e.type === 'message_changed' && e.conversationId && e.msgSeq !== null);
    if (mine.length === 0) return out;
    const wanted = [...new Map(mine.map((e) => [`${e.conversationId} ${e.msgSeq}`, { conversationId: e.conversationId!, seq: e.msgSeq! }])).values()];
    const inTable = await this.store.messagesAt(wanted);
    const have = new Set(inTable.map((m) => `${m.conversationId} ${m.seq}`));
    const archived = await this.messaging.archive.find(wanted.filter((w) => !have.has(`${w.conversationId} ${w.seq}`)));
    const messages = [...inTable, ...archived.values()];
    const views = await this.messaging.renderMessages(me, messages);
    const bySeq = new Map(views.map((v) => [`${v.conversation} ${v.seq}`, v]));
    for (const e of mine) {
      const view = bySeq.get(`${e.conversationId} ${e.msgSeq}`);
      const change = e.payload?.['change'];
      if (!view || (change !== 'edited' && change !== 'deleted' && change !== 'reactions')) continue;
      const by = e.payload?.['by'];
      out.set(e.seq, typeof by === 'string' ? { type: 'message_changed', change, message: view, by } : { type: 'message_changed', change, message: view });
    }
    return out;
  }
}
