import type { Database } from './db.js';
import { appendEntries, type StreamHeads } from './streams.js';

/** A device (token) as the store lists it. */
export interface DeviceRow {
  id: number;
  hash: Buffer;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  address: string | null;
}

/** A user's public profile, and whether the account was deleted. */
export interface ProfileRow {
  id: number;
  name: string;
  displayName: string;
  deleted: boolean;
}

/**
 * What a user sets about their own account (issue 13 B): display name, devices, password,
 * deletion, blocks and mutes. Everything of migration 0009 is read and written here.
 */
export class AccountSettings {
  constructor(readonly db: Database) {}

  /** A user's profile by (lower-case) name. */
  async profileByName(name: string): Promise<ProfileRow | null> {
    const rows = await this.db.query<{ id: number; name: string; display_name: string; deleted: boolean }>(
      'SELECT id, name, display_name, deleted_at IS NOT NULL AS deleted FROM users WHERE name = $1',
      [name],
    );
    const r = rows[0];
    return r ? { id: Number(r.id), name: r.name, displayName: r.display_name, deleted: Boolean(r.deleted) } : null;
  }

  /** A user's profile by id. */
  async profileById(id: number): Promise<ProfileRow | null> {
    const rows = await this.db.query<{ id: number; name: string; display_name: string; deleted: boolean }>(
      'SELECT id, name, display_name, deleted_at IS NOT NULL AS deleted FROM users WHERE id = $1',
      [id],
    );
    const r = rows[0];
    return r ? { id: Number(r.id), name: r.name, displayName: r.display_name, deleted: Boolean(r.deleted) } : null;
  }

  /**
   * Set a display name and append a "profile" entry to the user's stream and to the stream of
   * everyone who shares a conversation with them, in one transaction.
   */
  async setDisplayName(userId: number, displayName: string): Promise<StreamHeads> {
    return this.db.transaction(async (tx) => {
      const [me] = await tx.query<{ name: string }>('SELECT name FROM users WHERE id = $1', [userId]);
      if (!me) return new Map();
      const others = await tx.query<{ user_id: number }>(
        `SELECT DISTINCT m2.user_id FROM members m1 JOIN members m2 ON m2.conversation_id = m1.conversation_id
         WHERE m1.user_id = $1 AND m2.user_id <> $1 ORDER BY m2.user_id`,
        [userId],
      );
      const payload = { user: me.name, display_name: displayName };
      // The appends lock the users' rows in id order (the lock order); the update then finds its row locked by us
      const heads = await appendEntries(tx, [userId, ...others.map((o) => Number(o.user_id))].map((u) => ({ userId: u, type: 'profile', payload })));
      await tx.query('UPDATE users SET display_name = $2 WHERE id = $1', [userId, displayName]);
      return heads;
    });
  }

  /** Display names of some users by id ('' when unset). */
  async displayNames(ids: readonly number[]): Promise<Map<number, string>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.query<{ id: number; display_name: string }>('SELECT id, display_name FROM users WHERE id = ANY($1::bigint[])', [ids]);
    return new Map(rows.map((r) => [Number(r.id), r.display_name]));
  }

  /** Store a new device token with its name and the address it signed in from. */
  async createDevice(hash: Buffer, userId: number, name: string, address: string | null): Promise<void> {
    await this.db.query('INSERT INTO tokens (hash, user_id, device, address, last_used_at) VALUES ($1, $2, $3, $4, now())', [hash, userId, name, address]);
  }

  /** A device was used now, from address (written at most once a minute per token by core). */
  async deviceUsed(hash: Buffer, address: string | null): Promise<void> {
    await this.db.query('UPDATE tokens SET last_used_at = now(), address = coalesce($2, address) WHERE hash = $1', [hash, address]);
  }

  /** A user's devices, oldest first. */
  async devices(userId: number): Promise<DeviceRow[]> {
    const rows = await this.db.query<{ id: number; hash: unknown; device: string; issued_at: Date; last_used_at: Date | null; address: string | null }>(
      'SELECT id, hash, device, issued_at, last_used_at, address FROM tokens WHERE user_id = $1 ORDER BY issued_at, id',
      [userId],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      hash: Buffer.from(r.hash as Uint8Array),
      name: r.device,
      createdAt: new Date(r.issued_at),
      lastUsedAt: r.last_used_at === null ? null : new Date(r.last_used_at),
      address: r.address,
    }));
  }

  /** Revoke one device of a user; its token hash, or null when no such device is theirs. */
  async revokeDevice(userId: number, deviceId: number): Promise<Buffer | null> {
    const rows = await this.db.query<{ hash: unknown }>('DELETE FROM tokens WHERE user_id = $1 AND id = $2 RETURNING hash', [userId, deviceId]);
    return rows[0] ? Buffer.from(rows[0].hash as Uint8Array) : null;
  }

  /** Revoke every token of a user but `keep` (null: every one); the hashes revoked. */
  async revokeTokens(userId: number, keep: Buffer | null): Promise<Buffer[]> {
    const rows = await this.db.query<{ hash: unknown }>(
      'DELETE FROM tokens WHERE user_id = $1 AND ($2::bytea IS NULL OR hash <> $2::bytea) RETURNING hash',
      [userId, keep],
    );
    return rows.map((r) => Buffer.from(r.hash as Uint8Array));
  }

  /** Replace a user's password hash. */
  async setPasswordHash(userId: number, passHash: string): Promise<void> {
    await this.db.query('UPDATE users SET pass_hash = $2 WHERE id = $1', [userId, passHash]);
  }

  /**
   * Mark an account deleted (its row, and so its name, stays); its password hash is replaced by
   * one nobody knows, and its blocks and mutes are dropped. False when it already was.
   */
  async markDeleted(userId: number, mode: 'keep' | 'remove', passHash: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const rows = await tx.query(
        `UPDATE users SET deleted_at = now(), deleted_messages = $2, pass_hash = $3, display_name = ''
         WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
        [userId, mode, passHash],
      );
      if (rows.length === 0) return false;
      await tx.query('DELETE FROM blocks WHERE blocker = $1 OR blocked = $1', [userId]);
      return true;
    });
  }

  /** Users among ids whose account was deleted, and what became of their messages. */
  async deletedUsers(ids: readonly number[]): Promise<Map<number, 'keep' | 'remove'>> {
    if (ids.length === 0) return new Map();
    const rows = await this.db.query<{ id: number; deleted_messages: 'keep' | 'remove' | null }>(
      'SELECT id, deleted_messages FROM users WHERE id = ANY($1::bigint[]) AND deleted_at IS NOT NULL',
      [ids],
    );
    return new Map(rows.map((r) => [Number(r.id), r.deleted_messages ?? 'keep']));
  }

  /** The conversations a user is a member of, with their kinds. */
  async conversationIdsOf(userId: number): Promise<Array<{ id: string; kind: 'direct' | 'group' }>> {
    const rows = await this.db.query<{ id: string; kind: 'direct' | 'group' }>(
      'SELECT c.id, c.kind FROM members m JOIN conversations c ON c.id = m.conversation_id WHERE m.user_id = $1 ORDER BY c.id',
      [userId],
    );
    return rows;
  }

  /** A page of a user's messages that still hold content, in (conversation, seq) order after a position. */
  async messagesOfSender(
    userId: number,
    after: { conversationId: string; seq: number } | null,
    limit: number,
  ): Promise<Array<{ conversationId: string; seq: number; id: string }>> {
    const rows = await this.db.query<{ conversation_id: string; seq: number; id: string }>(
      `SELECT conversation_id, seq, id FROM messages
       WHERE sender_id = $1 AND ($2::text IS NULL OR (conversation_id, seq) > ($2::text, $3::bigint))
       ORDER BY conversation_id, seq LIMIT $4`,
      [userId, after?.conversationId ?? null, after?.seq ?? 0, limit],
    );
    return rows.map((r) => ({ conversationId: r.conversation_id, seq: Number(r.seq), id: r.id }));
  }

  /**
   * Empty messages of a deleted account ("remove"): each body replaced by its sealed empty text
   * (so the tombstone still counts as a message, unlike RETENTION's empty body), no attachment;
   * marked deleted for everyone in message_changes (migration 0008: so archived copies show as
   * tombstones too), their edited texts, earlier texts and reactions gone.
   */
  async emptyMessages(items: ReadonlyArray<{ conversationId: string; seq: number; id: string; body: Buffer }>): Promise<void> {
    if (items.length === 0) return;
    const convs = items.map((i) => i.conversationId);
    const ids = items.map((i) => i.id);
    await this.db.transaction(async (tx) => {
      await tx.query(
        `UPDATE messages m SET body = v.body, attachment = NULL
         FROM unnest($1::text[], $2::bigint[], $3::bytea[]) AS v(conversation_id, seq, body)
         WHERE m.conversation_id = v.conversation_id AND m.seq = v.seq AND octet_length(m.body) > 0`,
        [convs, items.map((i) => i.seq), items.map((i) => i.body)],
      );
      await tx.query(
        `INSERT INTO message_changes (conversation_id, message_id, deleted_at)
         SELECT c, m, now() FROM unnest($1::text[], $2::text[]) AS v(c, m)
         ON CONFLICT (conversation_id, message_id) DO UPDATE SET body = NULL, deleted_at = coalesce(message_changes.deleted_at, now())`,
        [convs, ids],
      );
      await tx.query('DELETE FROM message_edits WHERE (conversation_id, message_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))', [convs, ids]);
      await tx.query('DELETE FROM message_reactions WHERE (conversation_id, message_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))', [
        convs,
        ids,
      ]);
    });
  }

  /** Forget the files a user uploaded (after their messages were emptied). */
  async removeUploads(userId: number): Promise<void> {
    await this.db.query('DELETE FROM attachments WHERE uploader_id = $1', [userId]);
  }

  /** blocker blocks blocked; false when they already did. */
  async block(blocker: number, blocked: number): Promise<boolean> {
    const rows = await this.db.query('INSERT INTO blocks (blocker, blocked) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1', [blocker, blocked]);
    return rows.length > 0;
  }

  /** blocker unblocks blocked; false when they had not blocked them. */
  async unblock(blocker: number, blocked: number): Promise<boolean> {
    const rows = await this.db.query('DELETE FROM blocks WHERE blocker = $1 AND blocked = $2 RETURNING 1', [blocker, blocked]);
    return rows.length > 0;
  }

  /** The names a user blocks, by name. */
  async blocksOf(userId: number): Promise<string[]> {
    const rows = await this.db.query<{ name: string }>(
      'SELECT u.name FROM blocks b JOIN users u ON u.id = b.blocked WHERE b.blocker = $1 ORDER BY u.name COLLATE "C"',
      [userId],
    );
    return rows.map((r) => r.name);
  }

  /** Whether any of `ids` blocks `userId`. */
  async blockedByAny(userId: number, ids: readonly number[]): Promise<boolean> {
    if (ids.length === 0) return false;
    const rows = await this.db.query('SELECT 1 FROM blocks WHERE blocked = $1 AND blocker = ANY($2::bigint[]) LIMIT 1', [userId, ids]);
    return rows.length > 0;
  }

  /** Whether another member of this (direct) conversation blocks `userId`. */
  async blockedIn(conversationId: string, userId: number): Promise<boolean> {
    const rows = await this.db.query(
      `SELECT 1 FROM members m JOIN blocks b ON b.blocker = m.user_id AND b.blocked = $2
       WHERE m.conversation_id = $1 AND m.user_id <> $2 LIMIT 1`,
      [conversationId, userId],
    );
    return rows.length > 0;
  }

  /**
   * Mute or unmute a conversation for a member, appending a "conversation" entry with the change to
   * their own stream only. Null when not a member; heads empty when nothing changed.
   */
  async setMuted(conversationId: string, userId: number, muted: boolean): Promise<StreamHeads | null> {
    return this.db.transaction(async (tx) => {
      const member = await tx.query<{ muted: boolean }>('SELECT muted FROM members WHERE conversation_id = $1 AND user_id = $2 FOR NO KEY UPDATE', [
        conversationId,
        userId,
      ]);
      if (member.length === 0) return null;
      if (Boolean(member[0]!.muted) === muted) return new Map();
      await tx.query('UPDATE members SET muted = $3 WHERE conversation_id = $1 AND user_id = $2', [conversationId, userId, muted]);
      return appendEntries(tx, [{ userId, type: 'conversation', conversationId, payload: { change: muted ? 'muted' : 'unmuted' } }]);
    });
  }

  /** Which of these conversations the user muted (all of theirs when ids is null). */
  async mutedConversations(userId: number, ids: readonly string[] | null): Promise<Set<string>> {
    const rows = await this.db.query<{ conversation_id: string }>(
      'SELECT conversation_id FROM members WHERE user_id = $1 AND muted AND ($2::text[] IS NULL OR conversation_id = ANY($2::text[]))',
      [userId, ids],
    );
    return new Set(rows.map((r) => r.conversation_id));
  }
}
