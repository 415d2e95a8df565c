import { isUniqueViolation, toBuffer, type Database, type Queryable } from './db.js';

/**
 * All of Parley's SQL, behind domain-shaped methods. It knows rows and sequence numbers, not HTTP
 * nor encryption: bodies arrive sealed and leave sealed. Lock order everywhere:
 * acks → conversations → members → users, each set of rows in key order in one statement, users
 * always last (stream appends), so transactions never wait in a cycle. Writers lock rows FOR NO KEY
 * UPDATE (no key column ever changes): foreign-key checks (KEY SHARE) of other writers pass
 * beside them instead of turning into lock upgrades that deadlock. The SQL functions are in
 * sql/functions/, one file each, re-applied by every migrate.
 */

/** A user row. */
export interface UserRow {
  id: number;
  name: string;
  pass_hash: string;
  last_seen: Date | null;
}

/** A conversation row. */
export interface ConversationRow {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  wrapped_key: Buffer;
  last_seq: number;
  created_at: Date;
  /** What a new member of a group may read: from when they joined, or everything. */
  history: 'joined' | 'all';
}

/** A message as stored (body sealed). */
export interface StoredMessage {
  id: string;
  conversationId: string;
  seq: number;
  senderId: number;
  senderName: string;
  sentAt: Date;
  body: Buffer;
  clientId: string | null;
  attachment: unknown | null;
}

/** One entry of a user's event stream. Message entries carry the message row. */
export interface StreamEntry {
  seq: number;
  type: string;
  conversationId: string | null;
  payload: Record<string, unknown> | null;
  createdAt: Date;
  /** For a message entry: the message's seq in its conversation (also when the row was archived). */
  msgSeq: number | null;
  /** The message row; null for a message entry whose message was archived or emptied once delivered. */
  message: StoredMessage | null;
}

/** An entry to append to a user's stream. */
export interface NewEntry {
  userId: number;
  type: string;
  conversationId?: string | null;
  msgSeq?: number | null;
  senderId?: number | null;
  payload?: Record<string, unknown> | null;
}

/** A message to insert (already sealed). */
export interface NewMessage {
  id: string;
  conversationId: string;
  senderId: number;
  /** The sending device (not stored): its own echo need not wake it. */
  device?: string | null;
  body: Buffer;
  clientId: string | null;
  attachment: unknown | null;
}

/** A conversation to create (its key already wrapped). */
export interface NewConversation {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  wrappedKey: Buffer;
  ownerId: number;
  /** Every member, the owner included; for a direct conversation, exactly the two. */
  memberIds: number[];
  /** For a group: what members who join later may read (default: from when they joined). */
  history?: 'joined' | 'all';
}

/** Outcome of one open of a batch: the conversation's id, and whether this open created it. */
export interface OpenOutcome {
  id: string;
  created: boolean;
}

/** Outcome of one message of a batch. */
export type SendOutcome =
  | { ok: true; message: StoredMessage; created: boolean }
  | { ok: false; reason: 'not_member' | 'no_conversation' };

/** Where each user's stream now ends, for the wake-ups published after commit. */
export type Heads = Map<number, number>;

/** Users whose one new entry is their own message, sent from `device`. */
export type Echoes = Map<number, { head: number; device: string }>;

/**
 * For users who got exactly one entry in a commit, which entry it is (at their new head): a
 * message (conversation and seq) or a receipt (conversation and payload). The wake-up can then
 * carry the entry itself.
 */
export type Singles = Map<number, { conversationId: string; msgSeq?: number; payload?: Record<string, unknown> }>;

/** What a write appended to streams: the new heads, and the single entries. */
export interface Appended {
  heads: Heads;
  singles: Singles;
}

/** A member's delivery and read position. */
export interface MemberPosition {
  conversationId: string;
  userId: number;
  name: string;
  deliveredSeq: number;
  readSeq: number;
  role: Role;
  /** The member reads messages after this seq (where the conversation stood when they joined). */
  fromSeq: number;
  /** The member consented to the conversation (opened it, sent in it, or accepted it). */
  accepted: boolean;
}

/** A member's role: the owner (one, the creator), admins (add and remove members), members. */
export type Role = 'owner' | 'admin' | 'member';

/** Read positions of a conversation for one viewer, plus its summary. */
export interface ConversationSummary {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  wrappedKey: Buffer;
  lastSeq: number;
  readSeq: number;
  unread: number;
  members: string[];
  history: 'joined' | 'all';
  /** The viewer consented to it (opened it, sent in it, or accepted it). */
  accepted: boolean;
  owner: string | null;
  admins: string[];
  lastMessage: StoredMessage | null;
}

/** A contact: someone who shares a conversation with the viewer. */
export interface ContactRow {
  id: number;
  name: string;
  lastSeen: Date | null;
  conversation: string | null;
  /** The contact accepted a conversation we share: they share their presence and last seen with me. */
  shared: boolean;
  /** Their direct conversation with me waits for my consent (they opened it; I have not replied or accepted). */
  request: boolean;
}

type MessageRow = {
  id: string;
  conversation_id: string;
  seq: number;
  sender_id: number;
  sender_name: string;
  sent_at: Date;
  body: unknown;
  client_id: string | null;
  attachment: unknown;
};

const MESSAGE_COLUMNS = `m.id, m.conversation_id, m.seq, m.sender_id, su.name AS sender_name, m.sent_at, m.body,
  m.client_id, m.attachment`;

function toMessage(r: MessageRow): StoredMessage {
  return {
    id: r.id,
    conversationId: r.conversation_id,
    seq: Number(r.seq),
    senderId: Number(r.sender_id),
    senderName: r.sender_name,
    sentAt: r.sent_at,
    body: toBuffer(r.body),
    clientId: r.client_id,
    attachment: r.attachment ?? null,
  };
}

/** A range of a conversation's messages moved from the table into a sealed blob. */
export interface ArchiveChunk {
  conversationId: string;
  fromSeq: number;
  toSeq: number;
  blobKey: string;
}

interface ArchiveRow {
  conversation_id: string;
  from_seq: number;
  to_seq: number;
  blob_key: string;
}

function toChunk(r: ArchiveRow): ArchiveChunk {
  return { conversationId: r.conversation_id, fromSeq: Number(r.from_seq), toSeq: Number(r.to_seq), blobKey: r.blob_key };
}

/** Thrown inside commitArchive's transaction to roll it back when another node got there first. */
class RaceLost extends Error {}

/** The key of the one direct conversation of a pair. */
export function directKey(a: number, b: number): string {
  return a < b ? `${a}:${b}` : `${b}:${a}`;
}

/** Parley's data access. */
export class Store {
  constructor(readonly db: Database) {}

  // ---- accounts -------------------------------------------------------------------------

  /** Create a user; resolves null when the name is taken. */
  async createUser(name: string, passHash: string): Promise<UserRow | null> {
    try {
      return await this.db.transaction(async (tx) => {
        const [row] = await tx.query<UserRow>(
          'INSERT INTO users (name, pass_hash) VALUES ($1, $2) RETURNING id, name, pass_hash, last_seen',
          [name, passHash],
        );
        await tx.query('INSERT INTO acks (user_id) VALUES ($1)', [row!.id]);
        return row!;
      });
    } catch (err) {
      if (isUniqueViolation(err)) return null;
      throw err;
    }
  }

  /** A user by (lower-case) name. */
  async userByName(name: string): Promise<UserRow | null> {
    const rows = await this.db.query<UserRow>('SELECT id, name, pass_hash, last_seen FROM users WHERE name = $1', [name]);
    return rows[0] ?? null;
  }

  /** Users by id. */
  async usersByIds(ids: readonly number[]): Promise<UserRow[]> {
    if (ids.length === 0) return [];
    return this.db.query<UserRow>('SELECT id, name, pass_hash, last_seen FROM users WHERE id = ANY($1::bigint[])', [ids]);
  }

  /** Users by name; unknown names are absent from the result. */
  async usersByNames(names: readonly string[]): Promise<UserRow[]> {
    if (names.length === 0) return [];
    return this.db.query<UserRow>('SELECT id, name, pass_hash, last_seen FROM users WHERE name = ANY($1::text[])', [names]);
  }

  /** Store a token's hash for a user. */
  async createToken(hash: Buffer, userId: number): Promise<void> {
    await this.db.query('INSERT INTO tokens (hash, user_id) VALUES ($1, $2)', [hash, userId]);
  }

  /** The user a token hash belongs to. */
  async userByToken(hash: Buffer): Promise<{ id: number; name: string } | null> {
    const rows = await this.db.query<{ id: number; name: string }>(
      'SELECT u.id, u.name FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1',
      [hash],
    );
    return rows[0] ?? null;
  }

  /** Revoke a token. */
  async deleteToken(hash: Buffer): Promise<void> {
    await this.db.query('DELETE FROM tokens WHERE hash = $1', [hash]);
  }

  /** Record when users were last online. */
  async setLastSeen(items: ReadonlyArray<{ userId: number; at: Date }>): Promise<void> {
    if (items.length === 0) return;
    const ids = items.map((i) => i.userId);
    await this.db.transaction(async (tx) => {
      // The rows in id order first, as a stream append locks them (one UPDATE locks in whatever
      // order its join runs, and two such orders can wait on each other)
      await tx.query('SELECT 1 FROM users WHERE id = ANY($1::bigint[]) ORDER BY id FOR NO KEY UPDATE', [ids]);
      await tx.query(
        `UPDATE users SET last_seen = v.at FROM unnest($1::bigint[], $2::timestamptz[]) AS v(id, at)
         WHERE users.id = v.id AND (users.last_seen IS NULL OR users.last_seen < v.at)`,
        [ids, items.map((i) => i.at.toISOString())],
      );
    });
  }

  // ---- conversations --------------------------------------------------------------------

  /** A conversation by id. */
  async conversation(id: string): Promise<ConversationRow | null> {
    const rows = await this.db.query<ConversationRow & { wrapped_key: unknown }>(
      'SELECT id, kind, title, wrapped_key, last_seq, created_at, history FROM conversations WHERE id = $1',
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
      `SELECT c.id, c.kind, c.title, c.wrapped_key, c.last_seq, c.created_at, c.history, m.role, m.from_seq
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
      `SELECT c.id, c.kind, c.title, c.wrapped_key, c.last_seq, c.created_at, c.history,
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
  async openBatch(items: readonly NewConversation[]): Promise<{ outcomes: OpenOutcome[]; heads: Heads }> {
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
    const heads: Heads = new Map();
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
  async createConversation(c: NewConversation): Promise<Heads | null> {
    const { outcomes, heads } = await this.openBatch([c]);
    return outcomes[0]!.created ? heads : null;
  }

  /** Add or remove a member; appends a "conversation" entry for everyone concerned. */
  async changeMembers(
    conversationId: string,
    /** accepted: the one added consents (they add themselves back); someone else's addition waits for it. */
    change: { add?: number; remove?: number; accepted?: boolean },
  ): Promise<{ heads: Heads; changed: boolean }> {
    return this.db.transaction(async (tx) => {
      // Locked first: no message commits between reading where the conversation stands and the insert
      await tx.query('SELECT id FROM conversations WHERE id = $1 FOR NO KEY UPDATE', [conversationId]);
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
      if (!changed) return { heads: new Map(), changed };
      const heads = await this.tellMembers(tx, conversationId, change.add !== undefined ? 'member_added' : 'member_removed', change.remove);
      return { heads, changed };
    });
  }

  /**
   * A member consents to a conversation; false when they already had. Tells its members, and the
   * senders of what the member read meanwhile get that read receipt now.
   */
  async accept(conversationId: string, userId: number, userName: string): Promise<{ heads: Heads; changed: boolean }> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT id FROM conversations WHERE id = $1 FOR NO KEY UPDATE', [conversationId]);
      const rows = await tx.query<{ read_seq: number; from_seq: number }>(
        'UPDATE members SET accepted = true WHERE conversation_id = $1 AND user_id = $2 AND NOT accepted RETURNING read_seq, from_seq',
        [conversationId, userId],
      );
      if (rows.length === 0) return { heads: new Map(), changed: false };
      const readSeq = Number(rows[0]!.read_seq);
      const senders = await tx.query<{ sender_id: number }>(
        'SELECT DISTINCT sender_id FROM messages WHERE conversation_id = $1 AND seq > $2 AND seq <= $3 AND sender_id <> $4',
        [conversationId, Number(rows[0]!.from_seq), readSeq, userId],
      );
      const members = await tx.query<{ user_id: number }>('SELECT user_id FROM members WHERE conversation_id = $1', [conversationId]);
      const payload = { user: userName, status: 'read', up_to: readSeq, at: new Date().toISOString() };
      const heads = await this.append(tx, [
        ...members.map((m) => ({ userId: Number(m.user_id), type: 'conversation', conversationId, payload: { change: 'accepted' } })),
        ...senders.map((r) => ({ userId: Number(r.sender_id), type: 'receipt', conversationId, payload })),
      ]);
      return { heads, changed: true };
    });
  }

  /** Make a member an admin or a plain member again (never the owner); false when nothing changed. */
  async setRole(conversationId: string, userId: number, role: 'admin' | 'member'): Promise<{ heads: Heads; changed: boolean }> {
    return this.db.transaction(async (tx) => {
      await tx.query('SELECT id FROM conversations WHERE id = $1 FOR NO KEY UPDATE', [conversationId]);
      const rows = await tx.query(
        `UPDATE members SET role = $3 WHERE conversation_id = $1 AND user_id = $2 AND role <> 'owner' AND role <> $3 RETURNING 1`,
        [conversationId, userId, role],
      );
      if (rows.length === 0) return { heads: new Map(), changed: false };
      return { heads: await this.tellMembers(tx, conversationId, 'role_changed'), changed: true };
    });
  }

  /** Change what new members of a group may read; false when it already was so. */
  async setHistory(conversationId: string, history: 'joined' | 'all'): Promise<{ heads: Heads; changed: boolean }> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(
        `UPDATE conversations SET history = $2 WHERE id = $1 AND kind = 'group' AND history <> $2 RETURNING 1`,
        [conversationId, history],
      );
      if (rows.length === 0) return { heads: new Map(), changed: false };
      return { heads: await this.tellMembers(tx, conversationId, 'settings_changed'), changed: true };
    });
  }

  /** A "conversation" entry with `change` to every member (and to a member just removed). */
  private async tellMembers(tx: Queryable, conversationId: string, change: string, removed?: number): Promise<Heads> {
    const members = await tx.query<{ user_id: number }>('SELECT user_id FROM members WHERE conversation_id = $1', [conversationId]);
    const concerned = new Set(members.map((m) => Number(m.user_id)));
    if (removed !== undefined) concerned.add(removed);
    return this.append(
      tx,
      [...concerned].map((userId) => ({ userId, type: 'conversation', conversationId, payload: { change } })),
    );
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

  /** The conversations of a user, most recently active first, with unread counts and last message. */
  async conversationsOf(userId: number): Promise<ConversationSummary[]> {
    const rows = await this.db.query<{
      id: string;
      kind: 'direct' | 'group';
      title: string | null;
      wrapped_key: unknown;
      last_seq: number;
      read_seq: number;
      unread: number;
      members: string[];
      accepted: boolean;
      history: 'joined' | 'all';
      owner: string | null;
      admins: string[] | null;
    }>(
      `SELECT c.id, c.kind, c.title, c.wrapped_key, c.last_seq, me.read_seq,
         (SELECT count(*)::int FROM messages x WHERE x.conversation_id = c.id AND x.seq > me.read_seq AND x.sender_id <> $1) AS unread,
         (SELECT array_agg(u.name ORDER BY u.name COLLATE "C") FROM members o JOIN users u ON u.id = o.user_id WHERE o.conversation_id = c.id) AS members,
         c.history, me.accepted,
         (SELECT u.name FROM members o JOIN users u ON u.id = o.user_id WHERE o.conversation_id = c.id AND o.role = 'owner') AS owner,
         (SELECT array_agg(u.name ORDER BY u.name COLLATE "C") FROM members o JOIN users u ON u.id = o.user_id
           WHERE o.conversation_id = c.id AND o.role = 'admin') AS admins
       FROM members me JOIN conversations c ON c.id = me.conversation_id
       WHERE me.user_id = $1`,
      [userId],
    );
    const last = await this.db.query<MessageRow>(
      `SELECT ${MESSAGE_COLUMNS} FROM members me JOIN messages m ON m.conversation_id = me.conversation_id
         AND m.seq = (SELECT last_seq FROM conversations WHERE id = me.conversation_id) AND m.seq > me.from_seq
         AND octet_length(m.body) > 0
       JOIN users su ON su.id = m.sender_id WHERE me.user_id = $1`,
      [userId],
    );
    const lastBy = new Map(last.map((r) => [r.conversation_id, toMessage(r)]));
    return rows
      .map((r) => ({
        id: r.id,
        kind: r.kind,
        title: r.title,
        wrappedKey: toBuffer(r.wrapped_key),
        lastSeq: Number(r.last_seq),
        readSeq: Number(r.read_seq),
        unread: Number(r.unread),
        members: r.members ?? [],
        history: r.history,
        accepted: Boolean(r.accepted),
        owner: r.owner,
        admins: r.admins ?? [],
        lastMessage: lastBy.get(r.id) ?? null,
      }))
      .sort((a, b) => (b.lastMessage?.sentAt.getTime() ?? 0) - (a.lastMessage?.sentAt.getTime() ?? 0));
  }

  /** Everyone who shares a conversation with the user, with the direct conversation if any. */
  async contacts(userId: number): Promise<ContactRow[]> {
    const rows = await this.db.query<{ id: number; name: string; last_seen: Date | null; conversation: string | null; shared: boolean; request: boolean }>(
      `SELECT u.id, u.name, u.last_seen, d.id AS conversation,
         EXISTS (SELECT 1 FROM members a JOIN members b ON b.conversation_id = a.conversation_id AND b.user_id = $1
                 WHERE a.user_id = u.id AND a.accepted) AS shared,
         coalesce((SELECT NOT me.accepted FROM members me WHERE me.conversation_id = d.id AND me.user_id = $1), false) AS request
       FROM users u
       LEFT JOIN conversations d ON d.direct_key = (least(u.id, $1::bigint) || ':' || greatest(u.id, $1::bigint))
       WHERE u.id IN (SELECT m2.user_id FROM members m1 JOIN members m2 ON m2.conversation_id = m1.conversation_id
                      WHERE m1.user_id = $1 AND m2.user_id <> $1)
       ORDER BY u.name COLLATE "C"`,
      [userId],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      name: r.name,
      lastSeen: r.last_seen,
      conversation: r.conversation,
      shared: Boolean(r.shared),
      request: Boolean(r.request),
    }));
  }

  /**
   * Ids of the users each of these users shares their presence with: the other members of the
   * conversations they accepted (consent).
   */
  async contactIds(userIds: readonly number[]): Promise<Map<number, number[]>> {
    const out = new Map<number, number[]>();
    if (userIds.length === 0) return out;
    const rows = await this.db.query<{ user_id: number; contact: number }>(
      `SELECT DISTINCT m1.user_id, m2.user_id AS contact FROM members m1
       JOIN members m2 ON m2.conversation_id = m1.conversation_id AND m2.user_id <> m1.user_id
       WHERE m1.user_id = ANY($1::bigint[]) AND m1.accepted`,
      [userIds],
    );
    for (const r of rows) {
      const list = out.get(Number(r.user_id)) ?? [];
      list.push(Number(r.contact));
      out.set(Number(r.user_id), list);
    }
    return out;
  }

  // ---- messages -------------------------------------------------------------------------

  /**
   * Insert a batch of messages in one round trip (group commit: the function parley_send in
   * sql/functions/send.sql), each appended to the stream of every member of its conversation. Holding the
   * conversation row lock makes the client_id check exact: a retried send finds its first attempt.
   */
  async sendBatch(items: readonly NewMessage[]): Promise<{ outcomes: SendOutcome[]; heads: Heads; echoes: Echoes; singles: Singles }> {
    const rows = await this.db.query<{
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
    }>(
      `SELECT * FROM parley_send($1::text[], $2::text[], $3::bigint[], $4::bytea[], $5::text[], $6::jsonb[])`,
      [
        items.map((i) => i.conversationId),
        items.map((i) => i.id),
        items.map((i) => i.senderId),
        items.map((i) => i.body),
        items.map((i) => i.clientId),
        items.map((i) => (i.attachment === null ? null : JSON.stringify(i.attachment))),
      ],
    );
    const outcomes: SendOutcome[] = [];
    const heads: Heads = new Map();
    const singles: Singles = new Map();
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
        },
      });
    }
    // A sender whose only new entry is its own message: tell its device, so that the echo
    // alone does not wake the very request that is waiting for news from others.
    const echoes: Echoes = new Map();
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
       WHERE m.conversation_id = $1 AND m.seq < $2 AND octet_length(m.body) > 0 ORDER BY m.seq DESC LIMIT $3`,
      [conversationId, before, limit],
    );
    return rows.map(toMessage).reverse();
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

  /**
   * Which of these blob keys a row refers to (a file, a thumbnail or an archive chunk). One scan of
   * attachments and archives per call, joined by hash with the keys: call with large batches.
   */
  async referencedBlobs(keys: readonly string[]): Promise<Set<string>> {
    if (keys.length === 0) return new Set();
    const rows = await this.db.query<{ k: string }>(
      `SELECT DISTINCT c.k FROM unnest($1::text[]) AS c(k)
       JOIN (SELECT a.blob_key AS x FROM attachments a
             UNION ALL SELECT a.thumbnails->'small'->>'key' FROM attachments a WHERE a.thumbnails IS NOT NULL
             UNION ALL SELECT a.thumbnails->'large'->>'key' FROM attachments a WHERE a.thumbnails IS NOT NULL
             UNION ALL SELECT r.blob_key FROM archives r) AS used ON used.x = c.k`,
      [keys],
    );
    return new Set(rows.map((r) => r.k));
  }

  // ---- retention -----------------------------------------------------------------------

  /**
   * RETENTION=until-delivered, in one transaction for up to `limit` conversations (ids after
   * `afterId`) with messages past their purged position: empty the content of every message that reached a device of every
   * member but its sender, delete their attachments rows, and move each purged position up to the
   * first message still holding content. Resolves how many messages were emptied and the blob keys
   * (files and thumbnails) to remove after the commit, and the id to continue after (null: done).
   */
  async purgeDelivered(afterId: string, limit: number): Promise<{ messages: number; blobKeys: string[]; lastId: string | null }> {
    return this.db.transaction(async (tx) => {
      // Locked first, so no send to these conversations commits between the statements below
      const convs = (
        await tx.query<{ id: string }>(
          'SELECT id FROM conversations WHERE last_seq > purged_seq AND id > $1 ORDER BY id LIMIT $2 FOR NO KEY UPDATE',
          [afterId, limit],
        )
      ).map((r) => r.id);
      if (convs.length === 0) return { messages: 0, blobKeys: [], lastId: null };
      const rows = await tx.query<{ n: number; files: unknown }>(
        `WITH gone AS (
           UPDATE messages m SET body = '\\x'::bytea, attachment = NULL
           FROM conversations c, messages o
           WHERE c.id = ANY($1::text[]) AND m.conversation_id = c.id AND m.seq > c.purged_seq AND octet_length(m.body) > 0
             AND o.conversation_id = m.conversation_id AND o.seq = m.seq
             AND NOT EXISTS (SELECT 1 FROM members x WHERE x.conversation_id = m.conversation_id
                             AND x.user_id <> m.sender_id AND x.delivered_seq < m.seq)
           RETURNING o.attachment->>'id' AS file),
         files AS (DELETE FROM attachments a USING gone WHERE a.id = gone.file RETURNING a.blob_key, a.thumbnails)
         SELECT (SELECT count(*) FROM gone)::int AS n,
           coalesce((SELECT jsonb_agg(jsonb_build_object('key', blob_key, 'thumbnails', thumbnails)) FROM files), '[]'::jsonb) AS files`,
        [convs],
      );
      await tx.query(
        `UPDATE conversations c SET purged_seq = coalesce(
           (SELECT min(m.seq) - 1 FROM messages m WHERE m.conversation_id = c.id AND m.seq > c.purged_seq AND octet_length(m.body) > 0),
           c.last_seq)
         WHERE c.id = ANY($1::text[])`,
        [convs],
      );
      const r = rows[0];
      const files = (typeof r?.files === 'string' ? JSON.parse(r.files) : (r?.files ?? [])) as Array<{
        key: string;
        thumbnails: Record<string, { key?: string } | undefined> | null;
      }>;
      const blobKeys = files.flatMap((f) => [f.key, ...Object.values(f.thumbnails ?? {}).flatMap((t) => (t?.key ? [t.key] : []))]);
      return { messages: Number(r?.n ?? 0), blobKeys, lastId: convs.length < limit ? null : convs[convs.length - 1]! };
    });
  }

  // ---- archive --------------------------------------------------------------------------

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
      `SELECT conversation_id, from_seq, to_seq, blob_key FROM archives
       WHERE conversation_id = $1 AND from_seq < $2 ORDER BY from_seq DESC LIMIT $3`,
      [conversationId, before, limit],
    );
    return rows.map(toChunk);
  }

  /** The archive chunks holding some messages, each chunk once. */
  async archivesHolding(messages: ReadonlyArray<{ conversationId: string; seq: number }>): Promise<ArchiveChunk[]> {
    if (messages.length === 0) return [];
    const rows = await this.db.query<ArchiveRow>(
      `SELECT DISTINCT a.conversation_id, a.from_seq, a.to_seq, a.blob_key
       FROM archives a JOIN unnest($1::text[], $2::bigint[]) AS w(c, s)
         ON a.conversation_id = w.c AND w.s BETWEEN a.from_seq AND a.to_seq`,
      [messages.map((m) => m.conversationId), messages.map((m) => m.seq)],
    );
    return rows.map(toChunk);
  }

  // ---- streams --------------------------------------------------------------------------

  /**
   * Append entries to users' streams inside a transaction (parley_append in sql/functions/append.sql: lock the
   * users' rows in id order, bump each stream counter, insert the entries). Resolves the new heads.
   */
  async append(tx: Queryable, entries: readonly NewEntry[]): Promise<Heads> {
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
    return this.heads(rows);
  }

  /** Append entries in a transaction of their own (presence, typing-free notices). */
  async appendNow(entries: readonly NewEntry[]): Promise<Heads> {
    if (entries.length === 0) return new Map();
    return this.db.transaction((tx) => this.append(tx, entries));
  }

  /**
   * The start of a poll, in one round trip: where the user's stream ends and how far it was
   * acknowledged; and, when `since` acknowledges only entries that make nothing delivered (my own
   * messages, receipts, presence), that acknowledgement done on the spot. `needsDelivery` says the
   * range holds messages from others: then `acknowledge` must run (receipts to their senders).
   * The cursor update commits without waiting for the disk: lost in a database crash, it is only
   * made again by the device's next poll.
   */
  async pollStart(userId: number, since: number | null): Promise<{ head: number; acked: number; needsDelivery: boolean }> {
    const rows = await this.db.query<{ head: number; acked: number; needed: boolean }>(
      `WITH pos AS (SELECT u.stream_seq AS head, a.acked_seq AS acked FROM users u JOIN acks a ON a.user_id = u.id WHERE u.id = $1),
       need AS (SELECT EXISTS (SELECT 1 FROM events e, pos WHERE e.user_id = $1 AND e.seq > pos.acked AND e.seq <= $2::bigint
                AND e.type = 'message' AND e.sender_id <> $1) AS needed),
       upd AS (UPDATE acks SET acked_seq = $2::bigint FROM pos, need
               WHERE acks.user_id = $1 AND acks.acked_seq < $2::bigint AND $2::bigint <= pos.head AND NOT need.needed
               RETURNING set_config('synchronous_commit', 'off', true))
       SELECT pos.head, pos.acked, need.needed, (SELECT count(*) FROM upd) AS cheap FROM pos, need`,
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
    }>(
      `SELECT e.seq, e.type, e.conversation_id, e.payload, e.created_at, e.msg_seq, m.id AS m_id, m.sender_id,
         su.name AS sender_name, m.sent_at, m.body, m.client_id, m.attachment
       FROM events e
       LEFT JOIN messages m ON e.type = 'message' AND m.conversation_id = e.conversation_id AND m.seq = e.msg_seq
         AND octet_length(m.body) > 0
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
            }),
    }));
  }

  /**
   * Devices acknowledged their users' streams (one transaction for many users: group commit).
   * Advances each user's acknowledged position and, per conversation, the delivered position;
   * appends one coalesced "delivered up to N" receipt to each sender whose messages just became
   * delivered.
   */
  async acknowledge(items: ReadonlyArray<{ userId: number; userName: string; upTo: number }>): Promise<Appended> {
    const best = new Map<number, { userId: number; userName: string; upTo: number }>();
    for (const i of items) if ((best.get(i.userId)?.upTo ?? -1) < i.upTo) best.set(i.userId, i);
    const wanted = [...best.values()];
    if (wanted.length === 0) return { heads: new Map(), singles: new Map() };
    return this.appended(
      await this.db.query('SELECT * FROM parley_ack($1::bigint[], $2::text[], $3::bigint[])', [
        wanted.map((w) => w.userId),
        wanted.map((w) => w.userName),
        wanted.map((w) => w.upTo),
      ]),
    );
  }

  /** The user has read a conversation up to `upTo`: advance read (and delivered), receipts to senders and to the user's own devices. */
  async markRead(userId: number, userName: string, conversationId: string, upTo: number): Promise<Appended> {
    return this.appended(
      await this.db.query(
        'SELECT * FROM parley_advance($1, $2::bigint[], $3::text[], $4::text[], $5::bigint[])',
        ['read', [userId], [userName], [conversationId], [upTo]],
      ),
    );
  }

  private heads(rows: ReadonlyArray<Record<string, unknown>>): Heads {
    return new Map(rows.map((r) => [Number(r['out_user']), Number(r['out_head'])]));
  }

  /** Heads and single receipt entries from the rows of parley_advance or parley_ack. */
  private appended(rows: ReadonlyArray<Record<string, unknown>>): Appended {
    const singles: Singles = new Map();
    for (const r of rows) {
      const conv = r['out_conv'];
      const payload = r['out_payload'];
      if (typeof conv === 'string' && payload && typeof payload === 'object') {
        singles.set(Number(r['out_user']), { conversationId: conv, payload: payload as Record<string, unknown> });
      }
    }
    return { heads: this.heads(rows), singles };
  }
}
