import { toBuffer, type Database, type Queryable } from './db.js';
import { MESSAGE_COLUMNS, toMessage, type MessageRow, type NewEntry, type StoredMessage } from './rows.js';
import { appendEntries, type StreamHeads } from './streams.js';

/** What was changed about a message after it was sent (sql/0008_message_changes.sql). */
export interface MessageChangeRow {
  conversationId: string;
  messageId: string;
  replyToId: string | null;
  replyToSeq: number | null;
  /** The current text, sealed, once edited; null: the original. */
  body: Buffer | null;
  edits: number;
  editedAt: Date | null;
  deletedAt: Date | null;
}

/** The reactions of a message: each emoji (first-use order) with the names of who chose it. */
export type ReactionRows = Array<{ emoji: string; users: string[] }>;

/** An earlier text of an edited message (sealed) and when an edit replaced it. */
export interface EditRow {
  body: Buffer;
  replacedAt: Date;
}

/** Who gets a change in their stream: every member who may read the message. */
export interface ChangeRecipients {
  userIds: readonly number[];
  senderId: number;
  seq: number;
  /** Who makes the change (a user name), kept in the entries. */
  by: string;
}

/** The key of a message in the maps below: "conversation id" + " " + "message id". */
export function changeKey(conversationId: string, messageId: string): string {
  return `${conversationId} ${messageId}`;
}

/** Most distinct emoji one user may put on one message. */
export const MAX_REACTIONS_PER_USER = 20;

/**
 * Edits, deletes for everyone, replies and reactions: kept beside the messages (never rewriting
 * their rows or the archive chunks) and laid over them when they are rendered. Each write also
 * appends a `message_changed` entry (pointing at the message, no text) to every reader's stream,
 * in the same transaction. Locks: the conversation row, then the users (appendEntries), as every
 * writer does.
 */
export class MessageChanges {
  constructor(readonly db: Database) {}

  /** A message still in the table by id, purged (RETENTION=until-delivered) or not. */
  async messageById(conversationId: string, messageId: string): Promise<StoredMessage | null> {
    const rows = await this.db.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN users su ON su.id = m.sender_id
       WHERE m.conversation_id = $1 AND m.id = $2`,
      [conversationId, messageId],
    );
    return rows[0] ? toMessage(rows[0]) : null;
  }

  /**
   * The id of a message named by a client: its id, else my client_id of it (in the table; an
   * archived message is named by its id, so the ref itself is the answer when nothing matches).
   */
  async messageIdByRef(conversationId: string, senderId: number, ref: string): Promise<string | null> {
    const rows = await this.db.query<{ id: string }>(
      `SELECT id FROM messages WHERE conversation_id = $1 AND id = $3
       UNION ALL SELECT id FROM messages WHERE conversation_id = $1 AND sender_id = $2 AND client_id = $3 LIMIT 1`,
      [conversationId, senderId, ref],
    );
    return rows[0]?.id ?? ref;
  }

  /** Messages still in the table by conversation and seq, purged or not (for change events and quotes). */
  async messagesAt(wanted: ReadonlyArray<{ conversationId: string; seq: number }>): Promise<StoredMessage[]> {
    if (wanted.length === 0) return [];
    const rows = await this.db.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN users su ON su.id = m.sender_id
       JOIN unnest($1::text[], $2::bigint[]) AS w(c, s) ON m.conversation_id = w.c AND m.seq = w.s`,
      [wanted.map((w) => w.conversationId), wanted.map((w) => w.seq)],
    );
    return rows.map(toMessage);
  }

  /** What changed about these messages, and their reactions, keyed by changeKey. */
  async changesOf(
    refs: ReadonlyArray<{ conversationId: string; messageId: string }>,
  ): Promise<{ changes: Map<string, MessageChangeRow>; reactions: Map<string, ReactionRows> }> {
    const changes = new Map<string, MessageChangeRow>();
    const reactions = new Map<string, ReactionRows>();
    if (refs.length === 0) return { changes, reactions };
    const convs = refs.map((r) => r.conversationId);
    const ids = refs.map((r) => r.messageId);
    // Both at once: the two lookups do not depend on each other (a pool runs them side by side)
    const [rows, rx] = await Promise.all([
      this.db.query<{
        conversation_id: string;
        message_id: string;
        reply_to_id: string | null;
        reply_to_seq: number | null;
        body: unknown;
        edits: number;
        edited_at: Date | null;
        deleted_at: Date | null;
      }>(
        `SELECT c.conversation_id, c.message_id, c.reply_to_id, c.reply_to_seq, c.body, c.edits, c.edited_at, c.deleted_at
         FROM message_changes c JOIN unnest($1::text[], $2::text[]) AS w(c, m) ON c.conversation_id = w.c AND c.message_id = w.m`,
        [convs, ids],
      ),
      this.db.query<{ conversation_id: string; message_id: string; emoji: string; name: string }>(
        `SELECT r.conversation_id, r.message_id, r.emoji, u.name
         FROM message_reactions r JOIN unnest($1::text[], $2::text[]) AS w(c, m) ON r.conversation_id = w.c AND r.message_id = w.m
         JOIN users u ON u.id = r.user_id
         ORDER BY min(r.ord) OVER (PARTITION BY r.conversation_id, r.message_id, r.emoji), r.emoji, u.name COLLATE "C"`,
        [convs, ids],
      ),
    ]);
    for (const r of rows) {
      changes.set(changeKey(r.conversation_id, r.message_id), {
        conversationId: r.conversation_id,
        messageId: r.message_id,
        replyToId: r.reply_to_id,
        replyToSeq: r.reply_to_seq === null ? null : Number(r.reply_to_seq),
        body: r.body === null ? null : toBuffer(r.body),
        edits: Number(r.edits),
        editedAt: r.edited_at,
        deletedAt: r.deleted_at,
      });
    }
    for (const r of rx) {
      const k = changeKey(r.conversation_id, r.message_id);
      const list = reactions.get(k) ?? [];
      const last = list[list.length - 1];
      if (last && last.emoji === r.emoji) last.users.push(r.name);
      else list.push({ emoji: r.emoji, users: [r.name] });
      reactions.set(k, list);
    }
    return { changes, reactions };
  }

  /** A new message will quote another: recorded before its send commits (an unsent one's row is harmless and forgotten). */
  async recordReply(conversationId: string, messageId: string, replyToId: string, replyToSeq: number): Promise<void> {
    await this.db.query(
      `INSERT INTO message_changes (conversation_id, message_id, reply_to_id, reply_to_seq) VALUES ($1, $2, $3, $4)
       ON CONFLICT DO NOTHING`,
      [conversationId, messageId, replyToId, replyToSeq],
    );
  }

  /** Forget the reply row of a message that was not created (a failed send, or a retry that found its first attempt). */
  async forgetReply(conversationId: string, messageId: string): Promise<void> {
    await this.db.query('DELETE FROM message_changes WHERE conversation_id = $1 AND message_id = $2', [conversationId, messageId]);
  }

  /** The earlier texts of a message, oldest first. */
  async editsOf(conversationId: string, messageId: string): Promise<EditRow[]> {
    const rows = await this.db.query<{ body: unknown; replaced_at: Date }>(
      'SELECT body, replaced_at FROM message_edits WHERE conversation_id = $1 AND message_id = $2 ORDER BY n',
      [conversationId, messageId],
    );
    return rows.map((r) => ({ body: toBuffer(r.body), replacedAt: r.replaced_at }));
  }

  /**
   * Replace a message's text: the text it had (the last edit's, else `original`) joins its edit
   * history. 'deleted' when it was deleted for everyone (nothing changes).
   */
  async editMessage(
    conversationId: string,
    messageId: string,
    original: Buffer,
    body: Buffer,
    to: ChangeRecipients,
  ): Promise<{ outcome: 'ok' | 'deleted'; heads: StreamHeads }> {
    return this.db.transaction(async (tx) => {
      await lockConversation(tx, conversationId);
      await tx.query(
        'INSERT INTO message_changes (conversation_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [conversationId, messageId],
      );
      const [row] = await tx.query<{ body: unknown; edits: number; deleted_at: Date | null }>(
        'SELECT body, edits, deleted_at FROM message_changes WHERE conversation_id = $1 AND message_id = $2 FOR UPDATE',
        [conversationId, messageId],
      );
      if (!row || row.deleted_at !== null) return { outcome: 'deleted' as const, heads: new Map() };
      const n = Number(row.edits) + 1;
      await tx.query(
        'INSERT INTO message_edits (conversation_id, message_id, n, body) VALUES ($1, $2, $3, $4)',
        [conversationId, messageId, n, row.body === null ? original : toBuffer(row.body)],
      );
      await tx.query(
        'UPDATE message_changes SET body = $3, edits = $4, edited_at = now() WHERE conversation_id = $1 AND message_id = $2',
        [conversationId, messageId, body, n],
      );
      return { outcome: 'ok' as const, heads: await appendChange(tx, conversationId, to, 'edited', messageId) };
    });
  }

  /**
   * Delete a message for everyone: mark it, drop its edit history and reactions, empty its row in
   * the table (its body replaced by `emptied`, a sealed empty text, so it still counts as content
   * and stays in history as a tombstone) and delete its file's row. Resolves whether it was
   * deleted now (false: it already was; nothing changes) and the blob keys to remove after commit.
   */
  async deleteMessage(
    conversationId: string,
    messageId: string,
    emptied: Buffer,
    fileId: string | null,
    to: ChangeRecipients,
  ): Promise<{ deleted: boolean; blobKeys: string[]; heads: StreamHeads }> {
    return this.db.transaction(async (tx) => {
      await lockConversation(tx, conversationId);
      await tx.query(
        'INSERT INTO message_changes (conversation_id, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
        [conversationId, messageId],
      );
      const [row] = await tx.query<{ deleted_at: Date | null }>(
        'SELECT deleted_at FROM message_changes WHERE conversation_id = $1 AND message_id = $2 FOR UPDATE',
        [conversationId, messageId],
      );
      if (!row || row.deleted_at !== null) return { deleted: false, blobKeys: [], heads: new Map() };
      await tx.query(
        'UPDATE message_changes SET deleted_at = now(), body = NULL WHERE conversation_id = $1 AND message_id = $2',
        [conversationId, messageId],
      );
      await tx.query('DELETE FROM message_edits WHERE conversation_id = $1 AND message_id = $2', [conversationId, messageId]);
      await tx.query('DELETE FROM message_reactions WHERE conversation_id = $1 AND message_id = $2', [conversationId, messageId]);
      // A message emptied once delivered (an empty body) stays so: it is not history either way
      await tx.query(
        `UPDATE messages SET body = CASE WHEN octet_length(body) > 0 THEN $3::bytea ELSE body END, attachment = NULL
         WHERE conversation_id = $1 AND id = $2`,
        [conversationId, messageId, emptied],
      );
      let blobKeys: string[] = [];
      if (fileId !== null) {
        const files = await tx.query<{ blob_key: string; thumbnails: Record<string, { key?: string } | undefined> | null }>(
          'DELETE FROM attachments WHERE id = $1 AND conversation_id = $2 RETURNING blob_key, thumbnails',
          [fileId, conversationId],
        );
        blobKeys = files.flatMap((f) => {
          const thumbs = typeof f.thumbnails === 'string' ? (JSON.parse(f.thumbnails) as typeof f.thumbnails) : f.thumbnails;
          return [f.blob_key, ...Object.values(thumbs ?? {}).flatMap((t) => (t?.key ? [t.key] : []))];
        });
      }
      return { deleted: true, blobKeys, heads: await appendChange(tx, conversationId, to, 'deleted', messageId) };
    });
  }

  /**
   * Change one user's reactions on a message: add some emoji, remove some, or (`set`) make their
   * set exactly `add`. 'deleted' for a message deleted for everyone; 'too_many' when the user
   * would have more than MAX_REACTIONS_PER_USER. No entry is appended when nothing changed.
   */
  async react(
    conversationId: string,
    messageId: string,
    userId: number,
    change: { add: readonly string[]; remove: readonly string[]; set: boolean },
    to: ChangeRecipients,
  ): Promise<{ outcome: 'ok' | 'deleted' | 'too_many'; changed: boolean; heads: StreamHeads }> {
    return this.db.transaction(async (tx) => {
      await lockConversation(tx, conversationId);
      const [row] = await tx.query<{ deleted_at: Date | null }>(
        'SELECT deleted_at FROM message_changes WHERE conversation_id = $1 AND message_id = $2',
        [conversationId, messageId],
      );
      if (row && row.deleted_at !== null) return { outcome: 'deleted' as const, changed: false, heads: new Map() };
      const before = (
        await tx.query<{ emoji: string }>(
          'SELECT emoji FROM message_reactions WHERE conversation_id = $1 AND message_id = $2 AND user_id = $3',
          [conversationId, messageId, userId],
        )
      ).map((r) => r.emoji);
      const have = new Set(before);
      const removing = change.set ? before.filter((e) => !change.add.includes(e)) : change.remove.filter((e) => have.has(e));
      const adding = [...new Set(change.add)].filter((e) => !have.has(e));
      if (have.size - removing.length + adding.length > MAX_REACTIONS_PER_USER) {
        return { outcome: 'too_many' as const, changed: false, heads: new Map() };
      }
      if (removing.length === 0 && adding.length === 0) return { outcome: 'ok' as const, changed: false, heads: new Map() };
      if (removing.length > 0) {
        await tx.query(
          'DELETE FROM message_reactions WHERE conversation_id = $1 AND message_id = $2 AND user_id = $3 AND emoji = ANY($4::text[])',
          [conversationId, messageId, userId, removing],
        );
      }
      if (adding.length > 0) {
        // unnest WITH ORDINALITY: the order given is the order of first use
        await tx.query(
          `INSERT INTO message_reactions (conversation_id, message_id, user_id, emoji)
           SELECT $1, $2, $3, e.emoji FROM unnest($4::text[]) WITH ORDINALITY AS e(emoji, k) ORDER BY e.k`,
          [conversationId, messageId, userId, adding],
        );
      }
      return { outcome: 'ok' as const, changed: true, heads: await appendChange(tx, conversationId, to, 'reactions', messageId) };
    });
  }
}

/** The conversation's row, as every writer of it locks it first (so changes of one conversation are ordered). */
async function lockConversation(tx: Queryable, conversationId: string): Promise<void> {
  await tx.query('SELECT 1 FROM conversations WHERE id = $1 FOR NO KEY UPDATE', [conversationId]);
}

/** One `message_changed` entry per reader: it points at the message (no text); a poll renders its current state. */
async function appendChange(
  tx: Queryable,
  conversationId: string,
  to: ChangeRecipients,
  change: 'edited' | 'deleted' | 'reactions',
  messageId: string,
): Promise<StreamHeads> {
  const entries: NewEntry[] = to.userIds.map((userId) => ({
    userId,
    type: 'message_changed',
    conversationId,
    msgSeq: to.seq,
    // Not 'message': a change is never "delivered", so the sender's id stays off the entry
    senderId: null,
    payload: { change, id: messageId, by: to.by },
  }));
  return appendEntries(tx, entries);
}
