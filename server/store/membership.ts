import type { Database, Queryable } from './db.js';
import type { MemberPosition, Role } from './rows.js';
import { appendEntries, type StreamHeads } from './streams.js';

/** What a membership change did: the heads of the streams it told, and whether anything changed. */
export interface MembershipChange {
  heads: StreamHeads;
  changed: boolean;
}

const UNCHANGED = (): MembershipChange => ({ heads: new Map(), changed: false });

/**
 * Lock the conversation's row first: no message commits between reading where the conversation
 * stands and the membership write (lock order: conversations → members → users).
 */
async function lockConversation(tx: Queryable, conversationId: string): Promise<void> {
  await tx.query('SELECT id FROM conversations WHERE id = $1 FOR NO KEY UPDATE', [conversationId]);
}

/** A "conversation" entry with `change` to every member (and to a member just removed). */
async function tellMembers(tx: Queryable, conversationId: string, change: string, removed?: number): Promise<StreamHeads> {
  const members = await tx.query<{ user_id: number }>('SELECT user_id FROM members WHERE conversation_id = $1', [conversationId]);
  const concerned = new Set(members.map((m) => Number(m.user_id)));
  if (removed !== undefined) concerned.add(removed);
  return appendEntries(
    tx,
    [...concerned].map((userId) => ({ userId, type: 'conversation', conversationId, payload: { change } })),
  );
}

/** Who is in a conversation: adding and removing members, consent, roles, what newcomers read. */
export class Membership {
  constructor(readonly db: Database) {}

  /** Add or remove a member; appends a "conversation" entry for everyone concerned. */
  async changeMembers(
    conversationId: string,
    /** accepted: the one added consents (they add themselves back); someone else's addition waits for it. */
    change: { add?: number; remove?: number; accepted?: boolean },
  ): Promise<MembershipChange> {
    return this.db.transaction(async (tx) => {
      await lockConversation(tx, conversationId);
      let changed = false;
      if (change.add !== undefined) {
        // A group that shows new members its history from when they joined starts them at its last
        // message: they read what comes next, and count as having read (and received) the rest.
        const rows = await tx.query(
          `INSERT INTO members (conversation_id, user_id, delivered_seq, read_seq, from_seq, accepted)
           SELECT c.id, $2, s.at, s.at, s.at, $3 FROM conversations c,
             LATERAL (SELECT CASE WHEN c.history = 'all' THEN 0 ELSE c.last_seq END AS at) s
           WHERE c.id = $1
           ON CONFLICT DO NOTHING RETURNING user_id`,
          [conversationId, change.add, change.accepted ?? false],
        );
        changed = rows.length > 0;
      }
      if (change.remove !== undefined) {
        const rows = await tx.query('DELETE FROM members WHERE conversation_id = $1 AND user_id = $2 RETURNING user_id', [
          conversationId,
          change.remove,
        ]);
        changed = rows.length > 0;
      }
      if (!changed) return UNCHANGED();
      const heads = await tellMembers(tx, conversationId, change.add !== undefined ? 'member_added' : 'member_removed', change.remove);
      return { heads, changed };
    });
  }

  /**
   * A member consents to a conversation; false when they already had. Tells its members, and the
   * senders of what the member read meanwhile get that read receipt now.
   */
  async accept(conversationId: string, userId: number, userName: string): Promise<MembershipChange> {
    return this.db.transaction(async (tx) => {
      await lockConversation(tx, conversationId);
      const rows = await tx.query<{ read_seq: number; from_seq: number }>(
        'UPDATE members SET accepted = true WHERE conversation_id = $1 AND user_id = $2 AND NOT accepted RETURNING read_seq, from_seq',
        [conversationId, userId],
      );
      if (rows.length === 0) return UNCHANGED();
      const readSeq = Number(rows[0]!.read_seq);
      const senders = await tx.query<{ sender_id: number }>(
        'SELECT DISTINCT sender_id FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq <= $3 AND sender_id <> $4',
        [conversationId, Number(rows[0]!.from_seq), readSeq, userId],
      );
      const members = await tx.query<{ user_id: number }>('SELECT user_id FROM members WHERE conversation_id = $1', [conversationId]);
      const payload = { user: userName, status: 'read', up_to: readSeq, at: new Date().toISOString() };
      const heads = await appendEntries(tx, [
        ...members.map((m) => ({ userId: Number(m.user_id), type: 'conversation', conversationId, payload: { change: 'accepted' } })),
        ...senders.map((r) => ({ userId: Number(r.sender_id), type: 'receipt', conversationId, payload })),
      ]);
      return { heads, changed: true };
    });
  }

  /** Make a member an admin or a plain member again (never the owner); false when nothing changed. */
  async setRole(conversationId: string, userId: number, role: 'admin' | 'member'): Promise<MembershipChange> {
    return this.db.transaction(async (tx) => {
      await lockConversation(tx, conversationId);
      const rows = await tx.query(
        `UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2 AND role <> 'owner' AND role <> $3 RETURNING 1`,
        [conversationId, userId, role],
      );
      if (rows.length === 0) return UNCHANGED();
      return { heads: await tellMembers(tx, conversationId, 'role_changed'), changed: true };
    });
  }

  /** Change what new members of a group may read; false when it already was so. */
  async setHistory(conversationId: string, history: 'joined' | 'all'): Promise<MembershipChange> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(
        `UPDATE conversations SET history = $2 WHERE id = $1 AND kind = 'group' AND history <> $2 RETURNING 1`,
        [conversationId, history],
      );
      if (rows.length === 0) return UNCHANGED();
      return { heads: await tellMembers(tx, conversationId, 'settings_changed'), changed: true };
    });
  }

  /** Positions and roles of every member of these conversations. */
  async members(conversationIds: readonly string[]): Promise<MemberPosition[]> {
    if (conversationIds.length === 0) return [];
    const rows = await this.db.query<{
      conversation_id: string;
      user_id: number;
      name: string;
      delivered_seq: number;
      read_seq: number;
      role: Role;
      from_seq: number;
      accepted: boolean;
    }>(
      `SELECT m.conversation_id, m.user_id, u.name, m.delivered_seq, m.read_seq, m.role, m.from_seq, m.accepted
       FROM members m JOIN users u ON u.id = m.user_id WHERE m.conversation_id = ANY($1::text[]) ORDER BY u.name COLLATE "C"`,
      [conversationIds],
    );
    return rows.map((r) => ({
      conversationId: r.conversation_id,
      userId: Number(r.user_id),
      name: r.name,
      deliveredSeq: Number(r.delivered_seq),
      readSeq: Number(r.read_seq),
      role: r.role,
      fromSeq: Number(r.from_seq),
      accepted: Boolean(r.accepted),
    }));
  }
}
