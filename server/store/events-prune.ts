import type { Queryable } from './db.js';

/**
 * Delete stream entries that a device of their user acknowledged (at or below acks.acked_seq)
 * and that are older than `before`, for the users after `afterUser` (by id), `users` of them.
 * A poll without a cursor starts after acked_seq, so no device that asks for "what I have not
 * seen" can miss them. Each user's range is read through the events primary key. Resolves how
 * many went and the last user id of the page (null once past the last user).
 */
export async function pruneAcknowledgedEvents(
  db: Queryable,
  before: Date,
  afterUser: number,
  users: number,
): Promise<{ deleted: number; lastUser: number | null }> {
  const rows = await db.query<{ last: number | null; deleted: number }>(
    `WITH page AS (SELECT user_id, acked_seq FROM acks WHERE user_id > $1 ORDER BY user_id LIMIT $2),
     gone AS (DELETE FROM events e USING page p
              WHERE e.user_id = p.user_id AND e.seq <= p.acked_seq AND e.created_at < $3 RETURNING 1)
     SELECT (SELECT max(user_id) FROM page) AS last, (SELECT count(*) FROM gone) AS deleted`,
    [afterUser, users, before],
  );
  const r = rows[0];
  return { deleted: Number(r?.deleted ?? 0), lastUser: r?.last === null || r?.last === undefined ? null : Number(r.last) };
}
