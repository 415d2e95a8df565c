import type { Database, Queryable } from './db.js';
import type { MemberPosition, Role, WhoCanAdd } from './rows.js';
import { appendEntries, type StreamHeads } from './streams.js';

/** What a membership change did: the heads of the streams it told, and whether anything changed. */
export interface MembershipChange {
  heads: StreamHeads;
  changed: boolean;
  /** An addition refused: the group already had `max` members. */
  full?: boolean;
}

const UNCHANGED = (): MembershipChange => ({ heads: new Map(), changed: false });

/**
 * Lock the conversation's row first: no message commits between reading where the conversation
 * stands and the membership write (lock order: conversations → members → users). Its kind, or
 * null when it does not exist.
 */
export async function lockConversation(tx: Queryable, conversationId: string): Promise<'direct' | 'group' | null> {
  const rows = await tx.query<{ kind: 'direct' | 'group' }>('SELECT kind FROM conversations WHERE id = $1 FOR NO KEY UPDATE', [conversationId]);
  return rows[0]?.kind ?? null;
}

/**
 * A "conversation" entry for each of `changes` (in order) to every member (and to a member just
 * removed, who is told of the first change only: what happens after they left is not theirs).
 */
export async function tellMembers(tx: Queryable, conversationId: string, change: string | readonly string[], removed?: number): Promise<StreamHeads> {
  const changes = typeof change === 'string' ? [change] : change;
  const members = await tx.query<{ user_id: number }>('SELECT user_id FROM members WHERE conversation_id = $1 ORDER BY user_id', [conversationId]);
  const ids = members.map((m) => Number(m.user_id)).filter((id) => id !== removed);
  const entries = (userId: number, c: string) => ({ userId, type: 'conversation', conversationId, payload: { change: c } });
  return appendEntries(tx, [
    ...(removed !== undefined && changes.length > 0 ? [entries(removed, changes[0]!)] : []),
    ...changes.flatMap((c) => ids.map((userId) => entries(userId, c))),
  ]);
}

/**
 * After the owner of a group left: ownership passes to the longest-standing admin, else the
 * longest-standing member (earliest joined, then lowest id); none when the group is now empty.
 * The caller holds the conversation's lock. Whether someone became the owner.
 */
async function passOwnership(tx: Queryable, conversationId: string): Promise<boolean> {
  const rows = await tx.query(
    `UPDATE members SET role = 'owner'
     WHERE conversation_id = $1 AND user_id = (
       SELECT user_id FROM members WHERE conversation_id = $1
       ORDER BY (role = 'admin') DESC, joined_at, user_id LIMIT 1)
     RETURNING user_id`,
    [conversationId],
  );
  return rows.length > 0;
}

/** Who is in a conversation: adding and removing members, consent, roles, what newcomers read. */
export class Membership {
  constructor(readonly db: Database) {}

  /** Add or remove a member; appends a "conversation" entry for everyone concerned. */
  async changeMembers(
    conversationId: string,
    /**
     * accepted: the one added consents (they add themselves back, or join by a link); someone
     * else's addition waits for it. max: refuse an addition to a conversation that already has so
     * many members (counted under the lock, so two additions cannot both take the last place).
     * left: the one removed left by themselves (change `member_left`, not `member_removed`).
     * When a group's owner is removed, ownership passes on (change `owner_changed`).
     */
    change: { add?: number; remove?: number; accepted?: boolean; max?: number; left?: boolean },
  ): Promise<MembershipChange> {
    return this.db.transaction(async (tx) => {
      const kind = await lockConversation(tx, conversationId);
      let changed = false;
      if (change.add !== undefined && change.max !== undefined) {
        const rows = await tx.query<{ n: number; mine: boolean }>(
          'SELECT count(*)::int AS n, bool_or(user_id = $2) AS mine FROM members WHERE conversation_id = $1',
          [conversationId, change.add],
        );
        if (!rows[0]?.mine && Number(rows[0]?.n ?? 0) >= change.max) return { ...UNCHANGED(), full: true };
      }
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
      let ownerChanged = false;
      if (change.remove !== undefined) {
        const rows = await tx.query<{ role: Role }>('DELETE FROM members WHERE conversation_id = $1 AND user_id = $2 RETURNING role', [
          conversationId,
          change.remove,
        ]);
        changed = rows.length > 0;
        if (kind === 'group' && rows[0]?.role === 'owner') ownerChanged = await passOwnership(tx, conversationId);
      }
      if (!changed) return UNCHANGED();
      const first = change.add !== undefined ? 'member_added' : change.left ? 'member_left' : 'member_removed';
      const heads = await tellMembers(tx, conversationId, ownerChanged ? [first, 'owner_changed'] : [first], change.remove);
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

  /**
   * Hand a group's ownership from `from` to `to` (who becomes the owner; `from` an admin), in one
   * statement over both rows locked in id order. Unchanged when `from` is no longer the owner or
   * `to` no longer a member.
   */
  async transferOwnership(conversationId: string, from: number, to: number): Promise<MembershipChange> {
    return this.db.transaction(async (tx) => {
      if ((await lockConversation(tx, conversationId)) !== 'group') return UNCHANGED();
      const rows = await tx.query<{ user_id: number; role: Role }>(
        'SELECT user_id, role FROM members WHERE conversation_id = $1 AND user_id = ANY($2::bigint[]) ORDER BY user_id FOR NO KEY UPDATE',
        [conversationId, [from, to]],
      );
      const owner = rows.find((r) => Number(r.user_id) === from);
      if (from === to || rows.length !== 2 || owner?.role !== 'owner') return UNCHANGED();
      await tx.query(
        `UPDATE members SET role = CASE WHEN user_id = $2 THEN 'admin' ELSE 'owner' END
         WHERE conversation_id = $1 AND user_id = ANY(ARRAY[$2, $3]::bigint[])`,
        [conversationId, from, to],
      );
      return { heads: await tellMembers(tx, conversationId, 'owner_changed'), changed: true };
    });
  }

  /**
   * Change a group's title and settings (the fields given); one entry per kind of change to every
   * member: `renamed` for the title, `settings_changed` for history and who_can_add. Unchanged
   * when every field already was so.
   */
  async changeGroup(
    conversationId: string,
    change: { title?: string; history?: 'joined' | 'all'; whoCanAdd?: WhoCanAdd },
  ): Promise<MembershipChange> {
    return this.db.transaction(async (tx) => {
      if ((await lockConversation(tx, conversationId)) !== 'group') return UNCHANGED();
      const rows = await tx.query<{ title: string | null; history: string; who_can_add: string }>(
        'SELECT title, history, who_can_add FROM conversations WHERE id = $1',
        [conversationId],
      );
      const before = rows[0];
      if (!before) return UNCHANGED();
      const renamed = change.title !== undefined && change.title !== before.title;
      const settings =
        (change.history !== undefined && change.history !== before.history) ||
        (change.whoCanAdd !== undefined && change.whoCanAdd !== before.who_can_add);
      if (!renamed && !settings) return UNCHANGED();
      await tx.query(
        `UPDATE conversations SET title = coalesce($2, title), history = coalesce($3, history), who_can_add = coalesce($4, who_can_add)
         WHERE id = $1`,
        [conversationId, change.title ?? null, change.history ?? null, change.whoCanAdd ?? null],
      );
      const changes = [...(renamed ? ['renamed'] : []), ...(settings ? ['settings_changed'] : [])];
      return { heads: await tellMembers(tx, conversationId, changes), changed: true };
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
