import type { Database } from './db.js';
import { HAS_CONTENT } from './sql-rules.js';

/** What may be removed: content delivered everywhere (RETENTION=until-delivered), and blobs no row refers to. */
export class RetentionStore {
  constructor(readonly db: Database) {}

  /**
   * RETENTION=until-delivered, in one transaction for up to `limit` conversations (ids after
   * `afterId`) with messages past their purged position: empty the content of every message that
   * reached a device of every member but its sender, delete their attachments rows, and move each
   * purged position up to the first message still holding content. Resolves how many messages were
   * emptied and the blob keys (files and thumbnails) to remove after the commit, and the id to
   * continue after (null: done).
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
           WHERE c.id = ANY($1::text[]) AND m.conversation_id = c.id AND m.seq > c.purged_seq AND ${HAS_CONTENT}
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
           (SELECT min(m.seq) - 1 FROM messages m WHERE m.conversation_id = c.id AND m.seq > c.purged_seq AND ${HAS_CONTENT}),
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
}
