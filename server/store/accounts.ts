import { isUniqueViolation, type Database } from './db.js';
import type { UserRow } from './rows.js';

const USER_COLUMNS = 'id, name, pass_hash, last_seen, deleted_at IS NOT NULL AS deleted';

/** Users, their tokens and when they were last seen. */
export class Accounts {
  constructor(readonly db: Database) {}

  /** Create a user; resolves null when the name is taken. */
  async createUser(name: string, passHash: string): Promise<UserRow | null> {
    try {
      return await this.db.transaction(async (tx) => {
        const [row] = await tx.query<UserRow>(`INSERT INTO users (name, pass_hash) VALUES ($1, $2) RETURNING ${USER_COLUMNS}`, [
          name,
          passHash,
        ]);
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
    const rows = await this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE name = $1`, [name]);
    return rows[0] ?? null;
  }

  /** Users by id. */
  async usersByIds(ids: readonly number[]): Promise<UserRow[]> {
    if (ids.length === 0) return [];
    return this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = ANY($1::bigint[])`, [ids]);
  }

  /** Users by name; unknown names are absent from the result. */
  async usersByNames(names: readonly string[]): Promise<UserRow[]> {
    if (names.length === 0) return [];
    return this.db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE name = ANY($1::text[])`, [names]);
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
}
