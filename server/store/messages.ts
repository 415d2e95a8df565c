import { toBuffer, type Database, type Queryable } from './db.js';
import { MESSAGE_COLUMNS, toMessage, type MessageRow, type NewMessage, type SendOutcome, type StoredMessage } from './rows.js';
import { HAS_CONTENT } from './sql-rules.js';
import type { CarriedEntries, SenderEchoes, StreamHeads } from './streams.js';

/** What a batch of sends did: each message's outcome, and what the wake-ups after commit need. */
export interface SendResult {
  outcomes: SendOutcome[];
  heads: StreamHeads;
  echoes: SenderEchoes;
  singles: CarriedEntries;
}

/** A row of parley_send's result. */
interface SendRow {
  r_idx: number | null;
  r_outcome: string;
  r_id: string | null;
  r_seq: number | null;
  r_sender_name: string | null;
  r_sent_at: Date | null;
  r_created: boolean | null;
  r_body: unknown;
  r_attachment: unknown;
  r_user: number | null;
  r_head: number | null;
  r_n: number | null;
  r_conv: string | null;
  r_msgseq: number | null;
}

/** Messages: sending them (group commit) and reading a conversation's history. */
export class Messages {
  constructor(readonly db: Database) {}

  /**
   * Insert a batch of messages in one round trip (group commit: the function parley_send in
   * sql/functions/send.sql), each appended to the stream of every member of its conversation. Holding the
   * conversation row lock makes the client_id check exact: a retried send finds its first attempt.
   * A batch holding messages of bots takes one transaction of two or three statements instead.
   */
  async sendBatch(items: readonly NewMessage[]): Promise<SendResult> {
    const send = (db: Queryable) =>
      db.query<SendRow>(`SELECT * FROM parley_send($1::text[], $2::text[], $3::bigint[], $4::bytea[], $5::text[], $6::jsonb[])`, [
        items.map((i) => i.conversationId),
        items.map((i) => i.id),
        items.map((i) => i.senderId),
        items.map((i) => i.body),
        items.map((i) => i.clientId),
        items.map((i) => (i.attachment === null ? null : JSON.stringify(i.attachment))),
      ]);
    // A batch with messages posted through bots also stores their names, in the same
    // transaction: parley_send keeps the arguments the previous release's nodes call it with
    // (sql/functions/README.md), and batches without bots still take one round trip.
    const hasBots = items.some((i) => i.bot);
    let bots = new Map<string, string | null>();
    const rows = !hasBots
      ? await send(this.db)
      : await this.db.transaction(async (tx) => {
          const sent = await send(tx);
          const created: string[] = [];
          const names: string[] = [];
          const earlier: string[] = [];
          for (const r of sent) {
            if (r.r_outcome !== 'ok' || r.r_id === null) continue;
            const item = items[Number(r.r_idx) - 1]!;
            if (r.r_created && item.bot) {
              created.push(r.r_id);
              names.push(item.bot);
            } else if (!r.r_created) earlier.push(r.r_id);
          }
          if (created.length > 0) {
            await tx.query('UPDATE messages m SET bot = v.bot FROM unnest($1::text[], $2::text[]) AS v(id, bot) WHERE m.id = v.id', [created, names]);
          }
          if (earlier.length > 0) {
            const found = await tx.query<{ id: string; bot: string | null }>('SELECT id, bot FROM messages WHERE id = ANY($1::text[])', [earlier]);
            bots = new Map(found.map((f) => [f.id, f.bot]));
          }
          return sent;
        });
    const outcomes: SendOutcome[] = [];
    const heads: StreamHeads = new Map();
    const singles: CarriedEntries = new Map();
    const count = new Map<number, number>();
    for (const r of rows) {
      if (r.r_outcome === 'head') {
        heads.set(Number(r.r_user), Number(r.r_head));
        count.set(Number(r.r_user), Number(r.r_n));
        if (r.r_conv !== null && r.r_msgseq !== null) singles.set(Number(r.r_user), { conversationId: r.r_conv, msgSeq: Number(r.r_msgseq) });
        continue;
      }
      const item = items[Number(r.r_idx) - 1]!;
      if (r.r_outcome !== 'ok') {
        outcomes.push({ ok: false, reason: r.r_outcome as 'not_member' | 'no_conversation' });
        continue;
      }
      const created = Boolean(r.r_created);
      outcomes.push({
        ok: true,
        created,
        message: {
          id: r.r_id!,
          conversationId: item.conversationId,
          seq: Number(r.r_seq),
          senderId: item.senderId,
          senderName: r.r_sender_name ?? '',
          sentAt: r.r_sent_at!,
          body: created ? item.body : toBuffer(r.r_body),
          clientId: item.clientId,
          attachment: created ? item.attachment : (r.r_attachment ?? null),
          // A retried send answers the first message as it was stored (bot or not)
          bot: created ? (item.bot ?? null) : (bots.get(r.r_id!) ?? null),
        },
      });
    }
    // A sender whose only new entry is its own message: tell its device, so that the echo
    // alone does not wake the very request that is waiting for news from others.
    const echoes: SenderEchoes = new Map();
    items.forEach((item, i) => {
      const o = outcomes[i];
      if (item.device && o?.ok && o.created && count.get(item.senderId) === 1 && heads.has(item.senderId)) {
        echoes.set(item.senderId, { head: heads.get(item.senderId)!, device: item.device });
      }
    });
    return { outcomes, heads, echoes, singles };
  }

  /** Messages of a conversation with seq < before, oldest first, at most limit. */
  async history(conversationId: string, before: number, limit: number): Promise<StoredMessage[]> {
    const rows = await this.db.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM messages m JOIN users su ON su.id = m.sender_id
       WHERE m.conversation_id = $1 AND m.seq < $2 AND ${HAS_CONTENT} ORDER BY m.seq DESC LIMIT $3`,
      [conversationId, before, limit],
    );
    return rows.map(toMessage).reverse();
  }

  /** The seq of a message of a conversation still in the table (null when unknown or archived). */
  async messageSeq(conversationId: string, id: string): Promise<number | null> {
    const rows = await this.db.query<{ seq: string | number }>(
      'SELECT seq FROM messages WHERE conversation_id = $1 AND id = $2',
      [conversationId, id],
    );
    return rows[0] ? Number(rows[0].seq) : null;
  }
}
