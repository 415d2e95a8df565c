import { toBuffer, type Database } from './db.js';
import type { Role, WhoCanAdd } from './rows.js';

/** An invite link as its group's managers list it (the code still sealed). */
export interface InviteRow {
  codeHash: Buffer;
  conversationId: string;
  sealedCode: Buffer;
  createdByName: string;
  createdAt: Date;
  expiresAt: Date;
}

/** An invite found by its code, with what a join needs to know about it and its group. */
export interface InviteLookup {
  conversationId: string;
  expiresAt: Date;
  /** Neither revoked nor expired (by the database's clock, the same for every node). */
  live: boolean;
  title: string | null;
  /** Members of the group now. */
  members: number;
  whoCanAdd: WhoCanAdd;
  /** The creator's role in the group now; null once they left it. */
  creatorRole: Role | null;
}

/** Invite links to groups: created, listed, found by the hash of their code, revoked. */
export class Invites {
  constructor(readonly db: Database) {}

  /** Store a new invite, expiring `expiresInSeconds` from now; its creation and expiry times. */
  async createInvite(invite: {
    codeHash: Buffer;
    conversationId: string;
    sealedCode: Buffer;
    createdBy: number;
    expiresInSeconds: number;
  }): Promise<{ createdAt: Date; expiresAt: Date }> {
    const rows = await this.db.query<{ created_at: Date; expires_at: Date }>(
      `INSERT INTO invites (code_hash, conversation_id, sealed_code, created_by, expires_at)
       VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))
       RETURNING created_at, expires_at`,
      [invite.codeHash, invite.conversationId, invite.sealedCode, invite.createdBy, invite.expiresInSeconds],
    );
    return { createdAt: rows[0]!.created_at, expiresAt: rows[0]!.expires_at };
  }

  /** A group's invites that still work (neither revoked nor expired), newest first. */
  async invitesOf(conversationId: string): Promise<InviteRow[]> {
    const rows = await this.db.query<{ code_hash: unknown; conversation_id: string; sealed_code: unknown; name: string; created_at: Date; expires_at: Date }>(
      `SELECT i.code_hash, i.conversation_id, i.sealed_code, u.name, i.created_at, i.expires_at
       FROM invites i JOIN users u ON u.id = i.created_by
       WHERE i.conversation_id = $1 AND i.revoked_at IS NULL AND i.expires_at > now()
       ORDER BY i.created_at DESC, i.code_hash`,
      [conversationId],
    );
    return rows.map((r) => ({
      codeHash: toBuffer(r.code_hash),
      conversationId: r.conversation_id,
      sealedCode: toBuffer(r.sealed_code),
      createdByName: r.name,
      createdAt: r.created_at,
      expiresAt: r.expires_at,
    }));
  }

  /** The invite with this code hash, and its group as it stands; null when there is none. */
  async inviteByHash(codeHash: Buffer): Promise<InviteLookup | null> {
    const rows = await this.db.query<{
      conversation_id: string;
      expires_at: Date;
      live: boolean;
      title: string | null;
      members: number;
      who_can_add: WhoCanAdd;
      creator_role: Role | null;
    }>(
      `SELECT i.conversation_id, i.expires_at, (i.revoked_at IS NULL AND i.expires_at > now()) AS live,
         c.title, c.who_can_add,
         (SELECT count(*)::int FROM members m WHERE m.conversation_id = i.conversation_id) AS members,
         (SELECT m.role FROM members m WHERE m.conversation_id = i.conversation_id AND m.user_id = i.created_by) AS creator_role
       FROM invites i JOIN conversations c ON c.id = i.conversation_id
       WHERE i.code_hash = $1`,
      [codeHash],
    );
    const r = rows[0];
    if (!r) return null;
    return {
      conversationId: r.conversation_id,
      expiresAt: r.expires_at,
      live: Boolean(r.live),
      title: r.title,
      members: Number(r.members),
      whoCanAdd: r.who_can_add,
      creatorRole: r.creator_role,
    };
  }

  /** Revoke an invite of a group (it keeps answering "gone"); false when the group has no such invite. */
  async revokeInvite(conversationId: string, codeHash: Buffer): Promise<boolean> {
    const rows = await this.db.query(
      'UPDATE invites SET revoked_at = coalesce(revoked_at, now()) WHERE code_hash = $1 AND conversation_id = $2 RETURNING 1',
      [codeHash, conversationId],
    );
    return rows.length === 1;
  }
}
