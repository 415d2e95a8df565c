import { LRUCache } from 'lru-cache';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import type { Logger } from 'pino';
import type { Blobs } from '../blobs/blobs.js';
import { assertBlobKey } from '../blobs/blobs.js';
import { SealedBlobs } from '../blobs/seal.js';
import { hasContent, type ArchiveChunk, type Store, type StoredMessage } from '../store/store.js';
import type { Keyring } from './keys.js';
import { Periodic } from './periodic.js';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Messages per archive chunk: a history page touches one or two chunks of a few hundred KiB at most. */
export const CHUNK_MESSAGES = 500;
/** Opened chunks a node keeps in memory (a chunk of short messages is ~100 KiB of objects). */
const CACHE_CHUNKS = 32;
/** How often a node with ARCHIVE_AFTER_DAYS set looks for messages to archive. */
const RUN_EVERY_MS = 60 * 60 * 1000;

/** What one archive run did. */
export interface ArchiveReport {
  conversations: number;
  chunks: number;
  messages: number;
  /** Conversations skipped after an error (logged); the next run tries them again. */
  failed: number;
}

/** One message as a chunk keeps it: the row, its text still sealed with the conversation key. */
interface ChunkMessage {
  id: string;
  seq: number;
  sender_id: number;
  sender_name: string;
  sent_at: string;
  body: string;
  client_id: string | null;
  attachment: unknown;
  /** Absent in chunks written before bots. */
  bot?: string | null;
}

/**
 * The archive: moves old messages out of the messages table into sealed, compressed chunks in blob
 * storage (one archives row per chunk), and reads them back for history pages and stream replays.
 *
 * A chunk is the gzip of a JSON list of message rows (each text still sealed as in the table),
 * sealed as a whole with the conversation key, under a key derived from conversation and range. A
 * run is safe to interrupt and to run on several nodes at once: the blob is written first, then
 * one transaction deletes the rows and adds the archives row, or changes nothing when another run
 * got there first; an interrupted run leaves at worst a blob that the next run writes again.
 * Only messages read by every member but their sender leave the table (unread counts and
 * receipts are worked out from it), and never a conversation's last message (conversation lists
 * show it). A member who never reads holds their conversations' messages in the table.
 */
export class Archive {
  private readonly sealed: SealedBlobs;
  private readonly cache = new LRUCache<string, StoredMessage[]>({ max: CACHE_CHUNKS });
  private periodic: Periodic | undefined;

  constructor(
    private readonly store: Store,
    blobs: Blobs,
    private readonly keys: Keyring,
    private readonly log: Logger,
  ) {
    this.sealed = new SealedBlobs(blobs);
  }

  /** Archive the messages sent before `cutoff` that every member but their sender has read (never a conversation's last). */
  async run(cutoff: Date, chunkSize = CHUNK_MESSAGES): Promise<ArchiveReport> {
    const report: ArchiveReport = { conversations: 0, chunks: 0, messages: 0, failed: 0 };
    for (const conv of await this.store.archivable(cutoff)) {
      try {
        if (await this.archiveConversation(conv, cutoff, chunkSize, report)) report.conversations++;
      } catch (err) {
        // One conversation that cannot be archived (a key that does not open, a blob store
        // error) must not stop the others
        report.failed++;
        this.log.error({ err, conversation: conv.id }, 'could not archive a conversation');
      }
    }
    if (report.messages > 0 || report.failed > 0) this.log.info({ ...report, cutoff }, 'archived old messages');
    return report;
  }

  /** Archive one conversation's old messages, chunk by chunk; true when any moved. */
  private async archiveConversation(
    conv: { id: string; wrappedKey: Buffer; lastSeq: number },
    cutoff: Date,
    chunkSize: number,
    report: ArchiveReport,
  ): Promise<boolean> {
    const key = this.keys.key(conv.id, conv.wrappedKey);
    let touched = false;
    const members = await this.store.members([conv.id]);
    // Read by every member but its sender: then no unread count or receipt needs it in the table
    const readByAll = (m: StoredMessage) => members.every((x) => x.userId === m.senderId || x.readSeq >= m.seq);
    for (;;) {
      const oldest = await this.store.oldestMessages(conv.id, chunkSize);
      const take: StoredMessage[] = [];
      for (const m of oldest) {
        if (m.sentAt >= cutoff || m.seq >= conv.lastSeq || !readByAll(m)) break;
        take.push(m);
      }
      if (take.length === 0) break;
      const chunk: ArchiveChunk = {
        conversationId: conv.id,
        fromSeq: take[0]!.seq,
        toSeq: take[take.length - 1]!.seq,
        blobKey: chunkKey(conv.id, take[0]!.seq, take[take.length - 1]!.seq),
      };
      const plain = await gzipAsync(Buffer.from(JSON.stringify(take.map(toChunkMessage))));
      await this.sealed.put(key, chunk.blobKey, Readable.from([plain]));
      if (!(await this.store.commitArchive(chunk, take.length))) break; // another node is on it
      touched = true;
      report.chunks++;
      report.messages += take.length;
      if (take.length < oldest.length || oldest.length < chunkSize) break;
    }
    return touched;
  }

  /** Archive hourly what is older than `afterMs` (ARCHIVE_AFTER_DAYS); the first run within a minute. */
  start(afterMs: number): void {
    this.periodic = new Periodic(() => this.run(new Date(Date.now() - afterMs)), this.log, 'archive run');
    this.periodic.start(Math.floor(Math.random() * 60_000), RUN_EVERY_MS);
  }

  /** Stop the hourly runs, letting one in progress finish. */
  async stop(): Promise<void> {
    await this.periodic?.stop();
  }

  /**
   * A page of history across table and archive: at most limit messages with seq < before, oldest
   * first. Archived messages are all older than those in the table, so the archive is read only
   * when the table runs out.
   */
  async history(conversationId: string, before: number, limit: number): Promise<StoredMessage[]> {
    const fromTable = await this.store.history(conversationId, before, limit);
    if (fromTable.length >= limit) return fromTable;
    const older: StoredMessage[] = []; // newest first
    let bound = fromTable.length > 0 ? fromTable[0]!.seq : before;
    while (fromTable.length + older.length < limit) {
      const [chunk] = await this.store.archivesBefore(conversationId, bound, 1);
      if (!chunk) break;
      const wanted = (await this.open(chunk)).filter((m) => m.seq < bound).reverse();
      older.push(...wanted.slice(0, limit - fromTable.length - older.length));
      bound = chunk.fromSeq;
    }
    return [...older.reverse(), ...fromTable];
  }

  /** Archived messages by conversation and seq (for stream entries whose row was archived). */
  async find(wanted: ReadonlyArray<{ conversationId: string; seq: number }>): Promise<Map<string, StoredMessage>> {
    const found = new Map<string, StoredMessage>();
    if (wanted.length === 0) return found;
    const want = new Set(wanted.map((w) => `${w.conversationId} ${w.seq}`));
    for (const chunk of await this.store.archivesHolding(wanted)) {
      for (const m of await this.open(chunk)) {
        const k = `${m.conversationId} ${m.seq}`;
        if (want.has(k)) found.set(k, m);
      }
    }
    return found;
  }

  /** An archived message by id: the conversation's chunks newest first (changes to archived messages are rare). */
  async findById(conversationId: string, id: string): Promise<StoredMessage | null> {
    let bound = Number.MAX_SAFE_INTEGER;
    for (;;) {
      const [chunk] = await this.store.archivesBefore(conversationId, bound, 1);
      if (!chunk) return null;
      const hit = (await this.open(chunk)).find((m) => m.id === id);
      if (hit) return hit;
      bound = chunk.fromSeq;
    }
  }

  /** A chunk's messages, oldest first, from the cache or the blob store. */
  private async open(chunk: ArchiveChunk): Promise<StoredMessage[]> {
    const hit = this.cache.get(chunk.blobKey);
    if (hit) return hit;
    const conv = await this.store.conversation(chunk.conversationId);
    if (!conv) return [];
    const key = this.keys.key(conv.id, conv.wrapped_key);
    const parts: Buffer[] = [];
    for await (const part of await this.sealed.get(key, chunk.blobKey)) parts.push(part as Buffer);
    const rows = JSON.parse((await gunzipAsync(Buffer.concat(parts))).toString('utf8')) as ChunkMessage[];
    // Messages emptied once delivered (RETENTION=until-delivered) are no history
    const messages = rows.map((r) => fromChunkMessage(chunk.conversationId, r)).filter(hasContent);
    this.cache.set(chunk.blobKey, messages);
    return messages;
  }
}

/** The blob key of a chunk: derived from conversation and range, so a rerun writes the same blob. */
export function chunkKey(conversationId: string, fromSeq: number, toSeq: number): string {
  const id = createHash('sha256').update(`${conversationId}:${fromSeq}:${toSeq}`).digest('hex').slice(0, 32);
  const key = `archive/${id.slice(0, 2)}/${id}`;
  assertBlobKey(key);
  return key;
}

function toChunkMessage(m: StoredMessage): ChunkMessage {
  return {
    id: m.id,
    seq: m.seq,
    sender_id: m.senderId,
    sender_name: m.senderName,
    sent_at: m.sentAt.toISOString(),
    body: m.body.toString('base64'),
    client_id: m.clientId,
    attachment: m.attachment,
    ...(m.bot ? { bot: m.bot } : {}),
  };
}

function fromChunkMessage(conversationId: string, r: ChunkMessage): StoredMessage {
  return {
    id: r.id,
    conversationId,
    seq: r.seq,
    senderId: r.sender_id,
    senderName: r.sender_name,
    sentAt: new Date(r.sent_at),
    body: Buffer.from(r.body, 'base64'),
    clientId: r.client_id,
    attachment: r.attachment ?? null,
    bot: r.bot ?? null,
  };
}
