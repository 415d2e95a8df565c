import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import type { Blobs } from '../blobs/blobs.js';
import { SealedBlobs } from '../blobs/seal.js';
import type { Bus } from '../bus/bus.js';
import { cleanFileName } from '../media/names.js';
import { storeStream } from '../media/upload.js';
import type { Principal } from './accounts.js';
import { errors } from './errors.js';
import type { Keyring } from './keys.js';
import type { Limits } from './limits.js';
import { newId, type Messaging, type MessageView } from './messaging.js';
import type { Uploads } from './uploads.js';

/** A slot not used for a PUT within this long is gone. */
export const SLOT_TTL_MS = 10 * 60_000;
/** A file PUT and never sent in a message is gone after this long (its blob: `npm run sweep`). */
export const STAGED_TTL_MS = 24 * 3_600_000;

/** A slot as the shared store keeps it. */
interface SlotRecord {
  userId: number;
  name: string;
  size: number;
  /** The PUT URL's secret. */
  secret: string;
  /** The staging data key, wrapped (base64). */
  wrapped: string;
  /** Set once the PUT stored the file. */
  blobKey?: string;
}

/** What slots need. */
export interface UploadSlotsDeps {
  uploads: Uploads;
  messaging: Messaging;
  limits: Limits;
  bus: Bus;
  keys: Keyring;
  blobs: Blobs;
  log: Logger;
}

/**
 * XEP-0363 slots over Parley's uploads. An XMPP upload names no conversation: the slot promises a
 * file id (the GET URL is the ordinary members-only `/api/files/ID`), the PUT stores the file sealed
 * with a staging key of its own, and the file joins a conversation when its uploader sends the GET
 * URL as a message there (what Converse.js and other clients do after an upload): then it is
 * re-sealed with the conversation's key and becomes an attachment of that message, exactly as a
 * `POST /api/conversations/:id/files` would have made it (thumbnails included). Until then nobody
 * can download it (404: no attachment row). Slots live in the shared store (any node).
 */
export class UploadSlots {
  private readonly sealed: SealedBlobs;

  constructor(private readonly deps: UploadSlotsDeps) {
    this.sealed = new SealedBlobs(deps.blobs);
  }

  private key(fileId: string): string {
    return `upload:slot:${fileId}`;
  }

  /** A slot for a file of `size` bytes: spends an upload of the rate limit; 413 over UPLOAD_LIMIT. */
  async request(me: Principal, rawName: unknown, rawSize: unknown): Promise<{ fileId: string; secret: string; name: string }> {
    const size = Number(rawSize);
    if (!Number.isSafeInteger(size) || size < 1) throw errors.badRequest('size must be a positive whole number of bytes', 'bad_size');
    if (size > this.deps.uploads.limit) throw errors.tooLarge(`file is larger than ${this.deps.uploads.limit} bytes`);
    if (typeof rawName !== 'string' || rawName.length === 0 || rawName.length > 255) throw errors.badRequest('filename must be 1-255 characters', 'bad_filename');
    await this.deps.limits.upload(me.id);
    const fileId = newId('f');
    const secret = randomBytes(24).toString('base64url');
    const { wrapped } = this.deps.keys.create(this.key(fileId));
    const record: SlotRecord = { userId: me.id, name: cleanFileName(rawName), size, secret, wrapped: wrapped.toString('base64') };
    await this.deps.bus.set(this.key(fileId), JSON.stringify(record), SLOT_TTL_MS);
    return { fileId, secret, name: record.name };
  }

  private async load(fileId: string): Promise<SlotRecord | null> {
    if (!/^f[A-Za-z0-9_-]{1,63}$/.test(fileId)) return null;
    const raw = await this.deps.bus.get(this.key(fileId));
    return raw ? (JSON.parse(raw) as SlotRecord) : null;
  }

  /**
   * The PUT: the body must be exactly the slot's size (Content-Length, as XEP-0363 says). Unknown,
   * expired or wrong secret: 404; already uploaded: 409; another length: 400 `bad_size`.
   */
  async put(fileId: string, secret: string, declared: number, body: NodeJS.ReadableStream): Promise<void> {
    const slot = await this.load(fileId);
    const given = Buffer.from(String(secret));
    if (!slot || given.length !== Buffer.byteLength(slot.secret) || !timingSafeEqual(given, Buffer.from(slot.secret))) throw errors.notFound('upload slot');
    if (slot.blobKey) throw errors.conflict('this slot has been used');
    if (declared !== slot.size) throw errors.badRequest(`the slot is for ${slot.size} bytes; send exactly that (Content-Length)`, 'bad_size');
    const dataKey = this.deps.keys.key(this.key(fileId), Buffer.from(slot.wrapped, 'base64'));
    const stored = await storeStream(this.sealed, dataKey, body, slot.size, slot.size);
    if (stored.size !== slot.size) {
      await this.deps.blobs.delete(stored.blobKey).catch(() => undefined);
      throw errors.badRequest(`the slot is for ${slot.size} bytes; got ${stored.size}`, 'bad_size');
    }
    await this.deps.bus.set(this.key(fileId), JSON.stringify({ ...slot, blobKey: stored.blobKey }), STAGED_TTL_MS);
  }

  /**
   * A message of mine whose text is the GET URL of a file I PUT: the file becomes its attachment
   * in that conversation. Null when `fileId` is no uploaded slot of mine (the text is sent as text).
   */
  async attach(me: Principal, conversationId: string, fileId: string, input: { text: string; clientId?: unknown }): Promise<{ message: MessageView; created: boolean } | null> {
    const slot = await this.load(fileId);
    if (!slot || slot.userId !== me.id || !slot.blobKey) return null;
    const conv = await this.deps.messaging.requireMember(conversationId, me);
    // Taken by this message: a second one with the same URL is plain text
    if (!(await this.deps.bus.setIfAbsent(`${this.key(fileId)}:taken`, '1', STAGED_TTL_MS))) return null;
    const staging = this.deps.keys.key(this.key(fileId), Buffer.from(slot.wrapped, 'base64'));
    const dataKey = this.deps.messaging.keyOf(conv);
    try {
      const plain = await this.sealed.get(staging, slot.blobKey, undefined, slot.size);
      const file = await storeStream(this.sealed, dataKey, plain, this.deps.uploads.limit, slot.size);
      const out = await this.deps.uploads.finish(me, { conversation: conv.id, dataKey }, { ...file, originalName: slot.name }, input, undefined, fileId);
      await this.deps.blobs.delete(slot.blobKey).catch((err) => this.deps.log.error({ err }, 'could not remove a staged upload'));
      await this.deps.bus.del(this.key(fileId));
      return out;
    } catch (err) {
      await this.deps.bus.del(`${this.key(fileId)}:taken`).catch(() => undefined);
      throw err;
    }
  }
}
