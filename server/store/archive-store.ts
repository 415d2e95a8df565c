import { toBuffer, type Database } from './db.js';
import { MESSAGE_COLUMNS, toChunk, toMessage, type ArchiveChunk, type ArchiveRow, type MessageRow, type StoredMessage } from './rows.js';

/** Thrown inside commitArchive's transaction to roll it back when another node got there first. */
class RaceLost extends Error {}

const CHUNK_COLUMNS = 'a.conversation_id, a.from_seq, a.to_seq, a.blob_key';

/** Old messages moved out of the table into sealed blobs (archive chunks), and found there again. */
export class ArchiveStore {
  constructor(readonly db: Database) {}

  /**
   * Conversations whose oldest message in the table may leave it: sent before `cutoff`, read by
   * every member but its sender, and not the last message (conversation lists show it). One
   * primary-key probe per conversation.
   */
  async archivable(cutoff: Date): Promise<Array<{ id: string; wrappedKey: Buffer; lastSeq: number }>> {
    const rows = await this.db.query<{ id: string; wrapped_key: unknown; last_seq: number }>(
      `SELECT c.id, c.wrapped_key, c.last_seq FROM conversations c
       JOIN LATERAL (SELECT m.seq, m.sent_at, m.sender_id FROM messages m WHERE m.conversation_id = c.id ORDER BY m.seq LIMIT 1) o
         ON o.sent_at < $1 AND o.seq < c.last_seq
       WHERE NOT EXISTS (SELECT 1 FROM members x WHERE x.conversation_id = c.id AND x.user_id <> o.sender_id AND x.read_seq < o.seq)
       ORDER BY c.id`,
      [cutoff],
    );
    return rows.map((r) => ({ id: r.id, wrappedKey: toBuffer(r.wrapped_key), lastSeq: Number(r.last_seq) }));
  }

  /** The oldest messages of a conversation still in the table, oldest first, at most limit. */
  async oldestMessages(conversationId: string, limit: number): Promise<StoredMessage[]> {
    const rows = await this.db.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN users su ON su.id = m.sender_id
       WHERE m.conversation_id = $1 ORDER BY m.seq LIMIT $2`,
      [conversationId, limit],
    );
    return rows.map(toMessage);
  }

  /**
   * Record an archive chunk (its blob already stored) and delete its messages from the table, in
   * one transaction. False, with nothing changed, when the table no longer holds exactly `count`
   * messages in the range (another node archived them first).
   */
  async commitArchive(chunk: ArchiveChunk, count: number): Promise<boolean> {
    try {
      return await this.db.transaction(async (tx) => {
        const gone = await tx.query<{ n: number }>(
          `WITH d AS (DELETE FROM messages WHERE conversation_id = $1 AND seq BETWEEN $2 AND $3 RETURNING 1)
           SELECT count(*)::int AS n FROM d`,
          [chunk.conversationId, chunk.fromSeq, chunk.toSeq],
        );
        if (Number(gone[0]?.n) !== count) throw new RaceLost();
        const added = await tx.query(
          `INSERT INTO archives (conversation_id, from_seq, to_seq, blob_key) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING RETURNING 1`,
          [chunk.conversationId, chunk.fromSeq, chunk.toSeq, chunk.blobKey],
        );
        if (added.length !== 1) throw new RaceLost();
        return true;
      });
    } catch (err) {
      if (err instanceof RaceLost) return false;
      throw err;
    }
  }

  /** Archive chunks of a conversation starting before `before`, newest first, at most limit. */
  async archivesBefore(conversationId: string, before: number, limit: number): Promise<ArchiveChunk[]> {
    const rows = await this.db.query<ArchiveRow>(
      `SELECT ${CHUNK_COLUMNS} FROM archives a
       WHERE a.conversation_id = $1 AND a.from_seq < $2 ORDER BY a.from_seq DESC LIMIT $3`,
      [conversationId, before, limit],
    );
    return rows.map(toChunk);
  }

  /** The archive chunks holding some messages, each chunk once. */
  async archivesHolding(messages: ReadonlyArray<{ conversationId: string; seq: number }>): Promise<ArchiveChunk[]> {
    if (messages.length === 0) return [];
    const rows = await this.db.query<ArchiveRow>(
      `SELECT DISTINCT ${CHUNK_COLUMNS}
       FROM archives a JOIN unnest($1::text[], $2::bigint[]) AS w(c, s)
         ON a.conversation_id = w.c AND w.s BETWEEN a.from_seq AND a.to_seq`,
      [messages.map((m) => m.conversationId), messages.map((m) => m.seq)],
    );
    return rows.map(toChunk);
  }
}
