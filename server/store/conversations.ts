import { toBuffer, type Database } from './db.js';
import { MESSAGE_COLUMNS, toMessage, type ConversationRow, type ConversationSummary, type MessageRow, type NewConversation, type OpenOutcome, type Role, type WhoCanAdd } from './rows.js';
import { directKey, HAS_CONTENT } from './sql-rules.js';
import type { StreamHeads } from './streams.js';

const CONVERSATION_COLUMNS = 'c.id, c.kind, c.title, c.wrapped_key, c.last_seq, c.created_at, c.history, c.who_can_add';

/** Conversations: finding them, opening them, each viewer's list, and their wrapped keys. */
export class Conversations {
  constructor(readonly db: Database) {}

  /** A conversation by id. */
  async conversation(id: string): Promise<ConversationRow | null> {
    const rows = await this.db.query<ConversationRow & { wrapped_key: unknown }>(
      `SELECT ${CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = $1`,
      [id],
    );
    const r = rows[0];
    return r ? { ...r, wrapped_key: toBuffer(r.wrapped_key) } : null;
  }

  /**
   * A conversation and the user's membership of it (null when not a member: their role, and the
   * seq after which they may read), in one round trip.
   */
  async conversationFor(
    id: string,
    userId: number,
  ): Promise<{ conversation: ConversationRow; member: { role: Role; fromSeq: number } | null } | null> {
    const rows = await this.db.query<ConversationRow & { wrapped_key: unknown; role: Role | null; from_seq: number | null }>(
      `SELECT ${CONVERSATION_COLUMNS}, m.role, m.from_seq
       FROM conversations c LEFT JOIN members m ON m.conversation_id = c.id AND m.user_id = $2
       WHERE c.id = $1`,
      [id, userId],
    );
    const r = rows[0];
    if (!r) return null;
    const { role, from_seq, ...conv } = r;
    return {
      conversation: { ...conv, wrapped_key: toBuffer(conv.wrapped_key) },
      member: role === null ? null : { role, fromSeq: Number(from_seq) },
    };
  }

  /** The direct conversation of a pair, if it exists, and whether `a` is (still) a member of it. */
  async directConversation(a: number, b: number): Promise<(ConversationRow & { member: boolean }) | null> {
    const rows = await this.db.query<ConversationRow & { wrapped_key: unknown; member: boolean }>(
      `SELECT ${CONVERSATION_COLUMNS},
         EXISTS (SELECT 1 FROM members m WHERE m.conversation_id = c.id AND m.user_id = $2) AS member
       FROM conversations c WHERE c.direct_key = $1`,
      [directKey(a, b), a],
    );
    const r = rows[0];
    return r ? { ...r, wrapped_key: toBuffer(r.wrapped_key) } : null;
  }

  /**
   * Create conversations with their members, appending a "conversation" entry to each member's
   * stream, in one round trip (parley_open; group commit of many opens). For a direct conversation
   * whose pair already has one (two creators racing), the outcome is the existing id, not created.
   */
  async openBatch(items: readonly NewConversation[]): Promise<{ outcomes: OpenOutcome[]; heads: StreamHeads }> {
    const memberIdx: number[] = [];
    const memberUser: number[] = [];
    items.forEach((c, i) => {
      for (const u of new Set(c.memberIds)) {
        memberIdx.push(i + 1);
        memberUser.push(u);
      }
    });
    const rows = await this.db.query<{ r_idx: number | null; r_id: string | null; r_created: boolean | null; r_user: number | null; r_head: number | null }>(
      'SELECT * FROM parley_open($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[], $7::text[], $8::int[], $9::bigint[])',
      [
        items.map((c) => c.id),
        items.map((c) => c.kind),
        items.map((c) => c.title),
        items.map((c) => (c.kind === 'direct' ? directKey(c.memberIds[0]!, c.memberIds[1]!) : null)),
        items.map((c) => c.wrappedKey),
        items.map((c) => c.ownerId),
        items.map((c) => c.history ?? 'joined'),
        memberIdx,
        memberUser,
      ],
    );
    const outcomes: OpenOutcome[] = new Array(items.length);
    const heads: StreamHeads = new Map();
    for (const r of rows) {
      if (r.r_idx !== null) outcomes[Number(r.r_idx) - 1] = { id: r.r_id!, created: Boolean(r.r_created) };
      else heads.set(Number(r.r_user), Number(r.r_head));
    }
    return { outcomes, heads };
  }

  /**
   * Create one conversation (openBatch of one). For a direct conversation that already exists
   * (two creators racing), resolves null.
   */
  async createConversation(c: NewConversation): Promise<StreamHeads | null> {
    const { outcomes, heads } = await this.openBatch([c]);
    return outcomes[0]!.created ? heads : null;
  }

  /** The conversations of a user (in no order: core pages them), with unread counts and last message. */
  async conversationsOf(userId: number): Promise<ConversationSummary[]> {
    const rows = await this.db.query<{
      id: string;
      kind: 'direct' | 'group';
      title: string | null;
      wrapped_key: unknown;
      last_seq: number;
      read_seq: number;
      unread: number;
      names: string[] | null;
      roles: Role[] | null;
      accepted: boolean;
      history: 'joined' | 'all';
      who_can_add: WhoCanAdd;
    }>(
      `SELECT c.id, c.kind, c.title, c.wrapped_key, c.last_seq, me.read_seq,
         (SELECT count(*)::int FROM messages x WHERE x.conversation_id = c.id AND x.seq > me.read_seq AND x.sender_id <> $1) AS unread,
         r.names, r.roles, c.history, c.who_can_add, me.accepted
       FROM members me JOIN conversations c ON c.id = me.conversation_id
       CROSS JOIN LATERAL (SELECT array_agg(u.name ORDER BY u.name COLLATE "C") AS names, array_agg(o.role ORDER BY u.name COLLATE "C") AS roles
                           FROM members o JOIN users u ON u.id = o.user_id WHERE o.conversation_id = c.id) r
       WHERE me.user_id = $1`,
      [userId],
    );
    const last = await this.db.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM members me JOIN messages m ON m.conversation_id = me.conversation_id
         AND m.seq = (SELECT last_seq FROM conversations WHERE id = me.conversation_id) AND m.seq > me.from_seq
         AND ${HAS_CONTENT}
       JOIN users su ON su.id = m.sender_id WHERE me.user_id = $1`,
      [userId],
    );
    const lastBy = new Map(last.map((r) => [r.conversation_id, toMessage(r)]));
    return rows.map((r) => ({
      id: r.id,
      kind: r.kind,
      title: r.title,
      wrappedKey: toBuffer(r.wrapped_key),
      lastSeq: Number(r.last_seq),
      readSeq: Number(r.read_seq),
      unread: Number(r.unread),
      roster: (r.names ?? []).map((name, i) => ({ name, role: r.roles![i]! })),
      history: r.history,
      whoCanAdd: r.who_can_add,
      accepted: Boolean(r.accepted),
      lastMessage: lastBy.get(r.id) ?? null,
    }));
  }

  /** Conversations' wrapped keys in id order, after `afterId`, at most limit (for key rotation). */
  async wrappedKeys(afterId: string, limit: number): Promise<Array<{ id: string; wrappedKey: Buffer }>> {
    const rows = await this.db.query<{ id: string; wrapped_key: unknown }>(
      'SELECT id, wrapped_key FROM conversations WHERE id > $1 ORDER BY id LIMIT $2',
      [afterId, limit],
    );
    return rows.map((r) => ({ id: r.id, wrappedKey: toBuffer(r.wrapped_key) }));
  }

  /** Replace a conversation's wrapped key if it is still `before`; false when it changed meanwhile. */
  async replaceWrappedKey(id: string, before: Buffer, after: Buffer): Promise<boolean> {
    const rows = await this.db.query('UPDATE conversations SET wrapped_key = $3 WHERE id = $1 AND wrapped_key = $2 RETURNING 1', [id, before, after]);
    return rows.length === 1;
  }
}
