import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { newBlobKey, type Blobs } from '../blobs/blobs.js';
import { SealedBlobs } from '../blobs/seal.js';
import { Attachments, type AttachmentRecord, type ThumbnailRecord } from '../media/attachments.js';
import { cleanFileName } from '../media/names.js';
import { processImage, type Thumbnail } from '../media/thumbnails.js';
import type { StoredFile } from '../media/upload.js';
import type { Queryable } from '../store/db.js';
import type { Principal } from './accounts.js';
import { errors } from './errors.js';
import type { Limits } from './limits.js';
import { newId, type Messaging, type MessageView } from './messaging.js';

/** The attachment object of a message (docs/api.md), as the sender's answer and every member's event carry it. */
export interface AttachmentView {
  id: string;
  name: string;
  type: string;
  size: number;
  width?: number;
  height?: number;
  url: string;
  thumbnail_url?: string;
  thumbnail_type?: string;
  thumbnail_width?: number;
  thumbnail_height?: number;
  small_thumbnail_url?: string;
}

/** The attachment as the API shows it. */
export function attachmentView(a: AttachmentRecord): AttachmentView {
  const url = `/api/files/${a.id}`;
  const view: AttachmentView = { id: a.id, name: a.name, type: a.type, size: a.size, url };
  if (a.width !== null) view.width = a.width;
  if (a.height !== null) view.height = a.height;
  const large = a.thumbnails?.large;
  if (large) {
    view.thumbnail_url = `${url}/thumbnail`;
    view.thumbnail_type = large.type;
    view.thumbnail_width = large.width;
    view.thumbnail_height = large.height;
  }
  if (a.thumbnails?.small) view.small_thumbnail_url = `${url}/thumbnail?size=small`;
  return view;
}

/** A file a transport received, already streamed into a sealed blob with the conversation's key. */
export type ReceivedFile = StoredFile & { originalName: string };

/** What uploads need. */
export interface UploadsDeps {
  db: Queryable;
  blobs: Blobs;
  messaging: Messaging;
  limits: Limits;
  /** UPLOAD_LIMIT, bytes. */
  uploadLimit: number;
  /** IMAGE_PIXEL_LIMIT: larger images get no thumbnails. */
  imagePixelLimit: number;
  /** The door's logger (its module name stays in the lines it writes). */
  log: Logger;
}

/**
 * The upload use case, whatever the door (the JSON files route; XEP-0363 over BOSH to come): who
 * may upload where, under which limit, then the stored file turned into an attachment (thumbnails
 * for images, the attachments row) and the message that carries it. What a failed upload stored
 * is removed again.
 */
export class Uploads {
  readonly limit: number;
  private readonly sealed: SealedBlobs;
  private readonly attachments: Attachments;
  private readonly log: Logger;

  constructor(private readonly deps: UploadsDeps) {
    this.limit = deps.uploadLimit;
    this.sealed = new SealedBlobs(deps.blobs);
    this.attachments = new Attachments(deps.db);
    this.log = deps.log;
  }

  /**
   * Admit an upload to a conversation: I must be a member (404/403), then the door's own checks
   * (`checks`: the request's form and declared size), then the upload rate (429). Returns the key
   * the file is sealed with.
   */
  async begin(me: Principal, conversationId: unknown, checks: () => void = () => undefined): Promise<{ conversation: string; dataKey: Buffer }> {
    const conv = await this.deps.messaging.requireMember(conversationId, me);
    checks();
    await this.deps.limits.upload(me.id);
    return { conversation: conv.id, dataKey: this.deps.messaging.keyOf(conv) };
  }

  /**
   * The received file becomes an attachment and the message that carries it (`text`, `clientId`
   * as a send's). A retried upload (a client_id already used) answers the first message and
   * removes this copy. `validate` runs first (the door's checks of its other fields). On any
   * failure what was stored (blob, thumbnails, row) is removed and the error goes on.
   */
  async finish(
    me: Principal,
    target: { conversation: string; dataKey: Buffer },
    file: ReceivedFile,
    input: { text?: unknown; clientId?: unknown; replyTo?: unknown },
    validate: () => void = () => undefined,
    /** The attachment's id when the door promised one already (an XEP-0363 slot's GET URL). */
    fileId: string = newId('f'),
  ): Promise<{ message: MessageView; created: boolean }> {
    const blobKeys = [file.blobKey];
    let recorded: string | undefined;
    try {
      validate();
      if (file.size === 0) throw errors.badRequest('the file is empty', 'empty_file');
      const image = file.imageBytes ? await processImage(file.imageBytes, this.deps.imagePixelLimit, this.log) : {};
      file.imageBytes = undefined; // let the bytes go before the message round trip
      const thumbnails: { small?: ThumbnailRecord; large?: ThumbnailRecord } = {};
      for (const [which, thumb] of [['small', image.small], ['large', image.large]] as const) {
        if (!thumb) continue;
        thumbnails[which] = await this.storeThumbnail(target.dataKey, thumb, blobKeys);
      }
      const record: AttachmentRecord = {
        id: fileId,
        conversationId: target.conversation,
        uploaderId: me.id,
        name: cleanFileName(file.originalName),
        type: file.sniffed.type,
        size: file.size,
        width: image.width ?? null,
        height: image.height ?? null,
        blobKey: file.blobKey,
        thumbnails: thumbnails.large || thumbnails.small ? thumbnails : null,
      };
      await this.attachments.insert(record);
      recorded = record.id;
      const { message, created } = await this.deps.messaging.send(me, target.conversation, {
        text: input.text,
        clientId: input.clientId,
        replyTo: input.replyTo,
        attachment: { ...attachmentView(record) },
      });
      if (!created) {
        // A retried upload (same client_id): the first message stands, this copy goes.
        await this.attachments.delete(record.id);
        await this.removeBlobs(blobKeys);
      }
      this.log.info({ file: record.id, conversation: target.conversation, type: record.type, size: record.size, thumbnails: Boolean(record.thumbnails) }, 'file uploaded');
      return { message, created };
    } catch (err) {
      if (recorded) await this.attachments.delete(recorded).catch((e) => this.log.error({ err: e }, 'could not remove an attachment row'));
      await this.removeBlobs(blobKeys);
      throw err;
    }
  }

  private async storeThumbnail(dataKey: Buffer, t: Thumbnail, blobKeys: string[]): Promise<ThumbnailRecord> {
    const key = newBlobKey('t');
    blobKeys.push(key);
    await this.sealed.put(dataKey, key, Readable.from([t.data]));
    return { key, type: t.type, width: t.width, height: t.height, size: t.data.length };
  }

  private async removeBlobs(keys: readonly string[]): Promise<void> {
    for (const key of keys) await this.deps.blobs.delete(key).catch((err) => this.log.error({ err, key }, 'could not remove a blob'));
  }
}
