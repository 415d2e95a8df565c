import type { Database } from './db.js';
import type { ContactRow } from './rows.js';
import { directKeySql } from './sql-rules.js';

/** Who shares conversations with whom, and who shares their presence (consent). */
export class Contacts {
  constructor(readonly db: Database) {}

  /** Everyone who shares a conversation with the user, with the direct conversation if any. */
  async contacts(userId: number): Promise<ContactRow[]> {
    const rows = await this.db.query<{
      id: number;
      name: string;
      display_name: string;
      last_seen: Date | null;
      conversation: string | null;
      shared: boolean;
      request: boolean;
    }>(
      // Someone who blocks me shares nothing with me (no presence, no last seen), consent or not
      `SELECT u.id, u.name, u.display_name, u.last_seen, d.id AS conversation,
         EXISTS (SELECT 1 FROM members a JOIN members b ON b.conversation_id = a.conversation_id AND b.user_id = $1
                 WHERE a.user_id = u.id AND a.accepted)
           AND NOT EXISTS (SELECT 1 FROM blocks k WHERE k.blocker = u.id AND k.blocked = $1) AS shared,
         coalesce((SELECT NOT me.accepted FROM members me WHERE me.conversation_id = d.id AND me.user_id = $1), false) AS request
       FROM users u
       LEFT JOIN conversations d ON d.direct_key = ${directKeySql('u.id', '$1::bigint')}
       WHERE u.id IN (SELECT m2.user_id FROM members m1 JOIN members m2 ON m2.conversation_id = m1.conversation_id
                      WHERE m1.user_id = $1 AND m2.user_id <> $1)
       ORDER BY u.name COLLATE "C"`,
      [userId],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      name: r.name,
      displayName: r.display_name,
      lastSeen: r.last_seen,
      conversation: r.conversation,
      shared: Boolean(r.shared),
      request: Boolean(r.request),
    }));
  }

  /**
   * Ids of the users each of these users shares their presence with: the other members of the
   * conversations they accepted (consent), but not those they block.
   */
  async contactIds(userIds: readonly number[]): Promise<Map<number, number[]>> {
    const out = new Map<number, number[]>();
    if (userIds.length === 0) return out;
    const rows = await this.db.query<{ user_id: number; contact: number }>(
      `SELECT DISTINCT m1.user_id, m2.user_id AS contact FROM members m1
       JOIN members m2 ON m2.conversation_id = m1.conversation_id AND m2.user_id <> m1.user_id
       WHERE m1.user_id = ANY($1::bigint[]) AND m1.accepted
         AND NOT EXISTS (SELECT 1 FROM blocks k WHERE k.blocker = m1.user_id AND k.blocked = m2.user_id)`,
      [userIds],
    );
    for (const r of rows) {
      const list = out.get(Number(r.user_id)) ?? [];
      list.push(Number(r.contact));
      out.set(Number(r.user_id), list);
    }
    return out;
  }
}
