/**
 * Credential upkeep beside the Store's accounts queries: rehashing a password to new scrypt
 * parameters, and token expiry. A token's `created_at` is the time it was last refreshed (moved
 * forward on use), so a token expires TOKEN_TTL_DAYS after it was last used, not after it was made.
 */
import type { Queryable } from './db.js';

/** The user of a live token, and when the token was last refreshed. */
export interface TokenUse {
  id: number;
  name: string;
  refreshedAt: Date;
}

/** Password hashes and token lifetimes. */
export class Credentials {
  constructor(private readonly db: Queryable) {}

  /** Replace a user's password hash, only if it is still `before` (two logins rehashing at once). */
  async rehash(userId: number, before: string, after: string): Promise<void> {
    await this.db.query('UPDATE users SET pass_hash = $3 WHERE id = $1 AND pass_hash = $2', [userId, before, after]);
  }

  /** The user of a token refreshed within the last ttlMs; an older token is deleted and null. */
  async liveToken(hash: Buffer, ttlMs: number): Promise<TokenUse | null> {
    const rows = await this.db.query<{ id: number; name: string; created_at: Date | string; live: boolean }>(
      `SELECT u.id, u.name, t.created_at, t.created_at > now() - ($2::bigint * interval '1 millisecond') AS live
         FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1`,
      [hash, Math.floor(ttlMs)],
    );
    const row = rows[0];
    if (!row) return null;
    if (!row.live) {
      await this.db.query('DELETE FROM tokens WHERE hash = $1', [hash]);
      return null;
    }
    return { id: Number(row.id), name: row.name, refreshedAt: new Date(row.created_at) };
  }

  /** Move a token's expiry forward: it was used now. */
  async refresh(hash: Buffer): Promise<void> {
    await this.db.query('UPDATE tokens SET created_at = now() WHERE hash = $1', [hash]);
  }
}
