import type { Database, Queryable } from './db.js';
import { toMessage, type NewEntry, type StreamEntry } from './rows.js';
import { HAS_CONTENT } from './sql-rules.js';

/** Where each user's stream now ends (user id → seq), for the wake-ups published after commit. */
export type StreamHeads = Map<number, number>;

/**
 * Senders whose one new entry is their own message, sent from `device` (user id → their head and
 * that device): the echo alone need not wake the very request that waits for news from others.
 */
export type SenderEchoes = Map<number, { head: number; device: string }>;

/**
 * For users who got exactly one entry in a commit, which entry it is (at their new head): a
 * message (conversation and seq) or a receipt (conversation and payload). The wake-up can then
 * carry the entry itself.
 */
export type CarriedEntries = Map<number, { conversationId: string; msgSeq?: number; payload?: Record<string, unknown> }>;

/** What a write appended to streams: the new heads, and the entries a wake-up can carry. */
export interface StreamAppends {
  heads: StreamHeads;
  singles: CarriedEntries;
}

/**
 * Append entries to users' streams inside a transaction (parley_append in sql/functions/append.sql:
 * lock the users' rows in id order, bump each stream counter, insert the entries). Resolves the new heads.
 */
export async function appendEntries(tx: Queryable, entries: readonly NewEntry[]): Promise<StreamHeads> {
  if (entries.length === 0) return new Map();
  const rows = await tx.query(
    'SELECT out_user, out_head FROM parley_append($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::jsonb[])',
    [
      entries.map((e) => e.userId),
      entries.map((e) => e.type),
      entries.map((e) => e.conversationId ?? null),
      entries.map((e) => e.msgSeq ?? null),
      entries.map((e) => e.senderId ?? null),
      entries.map((e) => (e.payload ? JSON.stringify(e.payload) : null)),
    ],
  );
  return headsOf(rows);
}

/** The heads in rows of the SQL functions (out_user, out_head). */
function headsOf(rows: ReadonlyArray<Record<string, unknown>>): StreamHeads {
  return new Map(rows.map((r) => [Number(r['out_user']), Number(r['out_head'])]));
}

/** Heads and carried receipt entries from the rows of parley_advance or parley_ack. */
function appendsOf(rows: ReadonlyArray<Record<string, unknown>>): StreamAppends {
  const singles: CarriedEntries = new Map();
  for (const r of rows) {
    const conv = r['out_conv'];
    const payload = r['out_payload'];
    if (typeof conv === 'string' && payload && typeof payload === 'object') {
      singles.set(Number(r['out_user']), { conversationId: conv, payload: payload as Record<string, unknown> });
    }
  }
  return { heads: headsOf(rows), singles };
}

/** Each user's event stream: appends, the start of a poll, reads, acknowledgements and read marks. */
export class Streams {
  constructor(readonly db: Database) {}

  /** appendEntries, for callers holding a transaction. */
  async append(tx: Queryable, entries: readonly NewEntry[]): Promise<StreamHeads> {
    return appendEntries(tx, entries);
  }

  /** Append entries in a transaction of their own (presence, typing-free notices). */
  async appendNow(entries: readonly NewEntry[]): Promise<StreamHeads> {
    if (entries.length === 0) return new Map();
    return this.db.transaction((tx) => appendEntries(tx, entries));
  }

  /**
   * The start of a poll, in one round trip: where the user's stream ends and how far it was
   * acknowledged; and, when `since` acknowledges only entries that make nothing delivered (my own
   * messages, receipts, presence), that acknowledgement done on the spot. `needsDelivery` says the
   * range holds messages from others: then `acknowledge` must run (receipts to their senders).
   * The cursor update commits without waiting for the disk: lost in a database crash, it is only
   * made again by the device's next poll. (The `upd` step runs though nothing reads it: PostgreSQL
   * runs every data-modifying WITH step to completion.)
   */
  async pollStart(userId: number, since: number | null): Promise<{ head: number; acked: number; needsDelivery: boolean }> {
    const rows = await this.db.query<{ head: number; acked: number; needed: boolean }>(
      `WITH pos AS (SELECT u.stream_seq AS head, a.acked_seq AS acked FROM users u JOIN acks a ON a.user_id = u.id WHERE u.id = $1),
       need AS (SELECT EXISTS (SELECT 1 FROM events e, pos WHERE e.user_id = $1 AND e.seq > pos.acked AND e.seq <= $2::bigint
                AND e.type = 'message' AND e.sender_id <> $1) AS needed),
       upd AS (UPDATE acks SET acked_seq = $2::bigint FROM pos, need
               WHERE acks.user_id = $1 AND acks.acked_seq < $2::bigint AND $2::bigint <= pos.head AND NOT need.needed
               RETURNING set_config('synchronous_commit', 'off', true))
       SELECT pos.head, pos.acked, need.needed FROM pos, need`,
      [userId, since],
    );
    const r = rows[0];
    return r ? { head: Number(r.head), acked: Number(r.acked), needsDelivery: Boolean(r.needed) } : { head: 0, acked: 0, needsDelivery: false };
  }

  /** Entries of a user's stream after a position, in order, at most limit. */
  async readStream(userId: number, after: number, limit: number): Promise<StreamEntry[]> {
    const rows = await this.db.query<{
      seq: number;
      type: string;
      conversation_id: string | null;
      payload: Record<string, unknown> | null;
      created_at: Date;
      msg_seq: number | null;
      m_id: string | null;
      sender_id: number | null;
      sender_name: string | null;
      sent_at: Date | null;
      body: unknown;
      client_id: string | null;
      attachment: unknown;
      bot: string | null;
    }>(
      `SELECT e.seq, e.type, e.conversation_id, e.payload, e.created_at, e.msg_seq, m.id AS m_id, m.sender_id,
         su.name AS sender_name, m.sent_at, m.body, m.client_id, m.attachment, m.bot
       FROM events e
       LEFT JOIN messages m ON e.type = 'message' AND m.conversation_id = e.conversation_id AND m.seq = e.msg_seq
         AND ${HAS_CONTENT}
       LEFT JOIN users su ON su.id = m.sender_id
       WHERE e.user_id = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3`,
      [userId, after, limit],
    );
    return rows.map((r) => ({
      seq: Number(r.seq),
      type: r.type,
      conversationId: r.conversation_id,
      payload: r.payload,
      createdAt: r.created_at,
      msgSeq: r.msg_seq === null ? null : Number(r.msg_seq),
      message:
        r.m_id === null
          ? null
          : toMessage({
              id: r.m_id,
              conversation_id: r.conversation_id!,
              seq: r.msg_seq!,
              sender_id: r.sender_id!,
              sender_name: r.sender_name!,
              sent_at: r.sent_at!,
              body: r.body,
              client_id: r.client_id,
              attachment: r.attachment,
              bot: r.bot,
            }),
    }));
  }

  /**
   * Devices acknowledged their users' streams (one transaction for many users: group commit).
   * Advances each user's acknowledged position and, per conversation, the delivered position;
   * appends one coalesced "delivered up to N" receipt to each sender whose messages just became
   * delivered.
   */
  async acknowledge(items: ReadonlyArray<{ userId: number; userName: string; upTo: number }>): Promise<StreamAppends> {
    const best = new Map<number, { userId: number; userName: string; upTo: number }>();
    for (const i of items) if ((best.get(i.userId)?.upTo ?? -1) < i.upTo) best.set(i.userId, i);
    const wanted = [...best.values()];
    if (wanted.length === 0) return { heads: new Map(), singles: new Map() };
    return appendsOf(
      await this.db.query('SELECT * FROM parley_ack($1::bigint[], $2::text[], $3::bigint[])', [
        wanted.map((w) => w.userId),
        wanted.map((w) => w.userName),
        wanted.map((w) => w.upTo),
      ]),
    );
  }

  /** The user has read a conversation up to `upTo`: advance read (and delivered), receipts to senders and to the user's own devices. */
  async markRead(userId: number, userName: string, conversationId: string, upTo: number): Promise<StreamAppends> {
    return appendsOf(
      await this.db.query(
        'SELECT * FROM parley_advance($1, $2::bigint[], $3::text[], $4::text[], $5::bigint[])',
        ['read', [userId], [userName], [conversationId], [upTo]],
      ),
    );
  }
}
