import type { Queryable } from '../store/db.js';

/** One stored thumbnail: its sealed blob and what it is. */
export type ThumbnailRecord = { key: string; type: string; width: number; height: number; size: number };

/** An attachments row (sql/0001_init.sql). */
export interface AttachmentRecord {
  id: string;
  conversationId: string;
  uploaderId: number;
  name: string;
  type: string;
  size: number;
  width: number | null;
  height: number | null;
  blobKey: string;
  thumbnails: { small?: ThumbnailRecord; large?: ThumbnailRecord } | null;
}

type Row = {
  id: string;
  conversation_id: string;
  uploader_id: number | string;
  name: string;
  type: string;
  size: number | string;
  width: number | null;
  height: number | null;
  blob_key: string;
  thumbnails: AttachmentRecord['thumbnails'] | string | null;
};

function fromRow(r: Row): AttachmentRecord {
  return {
    id: r.id,
    conversationId: r.conversation_id,
    uploaderId: Number(r.uploader_id),
    name: r.name,
    type: r.type,
    size: Number(r.size),
    width: r.width,
    height: r.height,
    blobKey: r.blob_key,
    thumbnails: typeof r.thumbnails === 'string' ? (JSON.parse(r.thumbnails) as AttachmentRecord['thumbnails']) : r.thumbnails,
  };
}

/** The attachments table: the SQL of the files feature, on PostgreSQL and PGlite alike. */
export class Attachments {
  constructor(private readonly db: Queryable) {}

  /** Record an uploaded file (its blobs are already stored). */
  async insert(a: AttachmentRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO attachments (id, conversation_id, uploader_id, name, type, size, width, height, blob_key, thumbnails)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [a.id, a.conversationId, a.uploaderId, a.name, a.type, a.size, a.width, a.height, a.blobKey, a.thumbnails ? JSON.stringify(a.thumbnails) : null],
    );
  }

  /**
   * The attachment if `userId` is a member of its conversation, else null: "no such file" and "not
   * yours" are one answer, so ids cannot be probed. Also returns the conversation's wrapped key.
   */
  async forMember(id: string, userId: number): Promise<{ attachment: AttachmentRecord; wrappedKey: unknown } | null> {
    const rows = await this.db.query<Row & { wrapped_key: unknown }>(
      `SELECT a.id, a.conversation_id, a.uploader_id, a.name, a.type, a.size, a.width, a.height, a.blob_key,
              a.thumbnails, c.wrapped_key
         FROM attachments a
         JOIN conversations c ON c.id = a.conversation_id
         JOIN members m ON m.conversation_id = a.conversation_id AND m.user_id = $2
        -- a member who reads only from when they joined gets no file uploaded before
        WHERE a.id = $1 AND (m.from_seq = 0 OR a.created_at >= m.joined_at)`,
      [id, userId],
    );
    const r = rows[0];
    return r ? { attachment: fromRow(r), wrappedKey: r.wrapped_key } : null;
  }

  /** Remove the row (the caller removes the blobs). */
  async delete(id: string): Promise<void> {
    await this.db.query('DELETE FROM attachments WHERE id = $1', [id]);
  }
}
