import type { Logger } from 'pino';
import type { Store, StreamEntry } from '../store/store.js';
import type { Principal } from './accounts.js';
import { errors } from './errors.js';
import type { ConversationChange, PresenceEvent, StreamEvent } from './events.js';
import { GroupCommit } from './group-commit.js';
import type { Messaging } from './messaging.js';
import type { Notifier } from './notifier.js';
import { receiptEvent, receiptEvents } from './receipts.js';

/** Most events in one answer; `limited: true` tells the client more are waiting. */
export const BATCH_LIMIT = 500;

/** A batch of a user's stream as the API answers it. */
export interface Batch {
  cursor: string;
  events: StreamEvent[];
  limited?: boolean;
}

/** Cursors are opaque to clients: "1-" and the stream position in base 36 (the 1 is a format version). */
export function encodeCursor(seq: number): string {
  return `1-${seq.toString(36)}`;
}

/** Decode a cursor; null when malformed. */
export function decodeCursor(text: unknown): number | null {
  if (typeof text !== 'string' || !/^1-[0-9a-z]{1,11}$/.test(text)) return null;
  const n = parseInt(text.slice(2), 36);
  return Number.isSafeInteger(n) ? n : null;
}

/** Per-user event streams: reading from a cursor, acknowledging, rendering entries as events. */
export class Streams {
  private readonly log: Logger;
  private readonly acks: GroupCommit<{ userId: number; userName: string; upTo: number }, undefined>;
  constructor(
    private readonly store: Store,
    private readonly messaging: Messaging,
    private readonly notifier: Notifier,
    log: Logger,
  ) {
    this.log = log.child({ module: 'streams' });
    this.acks = new GroupCommit(async (items) => {
      const { heads, singles } = await this.store.acknowledge(items);
      this.notifier.wake(heads, undefined, receiptEvents(singles));
      return items.map(() => undefined);
    });
  }

  /**
   * Resolve where a poll starts: `since` checked against the stream (400 bad_cursor when
   * malformed or beyond its end) and acknowledged; without it, the oldest unacknowledged event.
   * Also says where the stream ends, so a poll that is up to date parks without reading.
   * `acknowledge: false` checks `since` without acknowledging it (a bot reading).
   */
  async begin(user: Principal, since: unknown, acknowledge = true): Promise<{ after: number; head: number }> {
    const given = since !== undefined && since !== null && since !== '';
    const seq = given ? decodeCursor(since) : null;
    if (given && seq === null) throw errors.badCursor();
    const pos = await this.store.pollStart(user.id, seq);
    if (seq === null) return { after: pos.acked, head: pos.head };
    if (seq > pos.head) throw errors.badCursor();
    if (pos.needsDelivery && acknowledge) await this.acknowledge(user, seq);
    return { after: seq, head: pos.head };
  }

  /** Where a poll starts (see begin). */
  async start(user: Principal, since: unknown): Promise<number> {
    return (await this.begin(user, since)).after;
  }

  /**
   * A device acknowledged the stream up to seq: messages become delivered, senders get receipts.
   * Concurrent acknowledgements of many users share one transaction (group commit).
   */
  async acknowledge(user: Principal, seq: number): Promise<void> {
    try {
      await this.acks.submit({ userId: user.id, userName: user.name, upTo: seq });
    } catch (err) {
      // The poll still answers; the next acknowledgement covers this one.
      this.log.warn({ err, user: user.id }, 'acknowledge failed');
    }
  }

  /** Read and render the events after a position. */
  async read(user: Principal, after: number): Promise<Batch> {
    const entries = await this.store.readStream(user.id, after, BATCH_LIMIT + 1);
    const limited = entries.length > BATCH_LIMIT;
    const page = limited ? entries.slice(0, BATCH_LIMIT) : entries;
    const last = page.length > 0 ? page[page.length - 1]!.seq : after;
    const batch: Batch = { cursor: encodeCursor(last), events: await this.render(user, page) };
    if (limited) batch.limited = true;
    return batch;
  }

  /** An empty answer at a position. */
  empty(after: number): Batch {
    return { cursor: encodeCursor(after), events: [] };
  }

  private async render(user: Principal, entries: readonly StreamEntry[]): Promise<StreamEvent[]> {
    // A replay from an old cursor may reach entries whose message has since been archived
    const archived = await this.messaging.archive.find(
      entries.flatMap((e) =>
        e.type === 'message' && !e.message && e.conversationId && e.msgSeq !== null ? [{ conversationId: e.conversationId, seq: e.msgSeq }] : [],
      ),
    );
    const messageOf = (e: StreamEntry) => e.message ?? archived.get(`${e.conversationId} ${e.msgSeq}`) ?? null;
    const messages = await this.messaging.renderMessages(
      user,
      entries.flatMap((e) => {
        const m = messageOf(e);
        return m ? [m] : [];
      }),
    );
    const byId = new Map(messages.map((m) => [m.id, m]));
    const convIds = entries.filter((e) => e.type === 'conversation' && e.conversationId).map((e) => e.conversationId!);
    const convs = new Map((await this.messaging.views(user, convIds)).map((c) => [c.id, c]));
    const changed = (await this.messaging.changes?.eventsFor(user, entries)) ?? new Map<number, StreamEvent>();
    const out: StreamEvent[] = [];
    for (const e of entries) {
      switch (e.type) {
        case 'message': {
          const stored = messageOf(e);
          const m = stored && byId.get(stored.id);
          if (m) out.push({ type: 'message', message: m });
          break;
        }
        case 'receipt':
          out.push(receiptEvent(e.conversationId, e.payload));
          break;
        case 'presence':
          out.push({ type: 'presence', ...e.payload } as PresenceEvent);
          break;
        case 'conversation': {
          const c = convs.get(e.conversationId!);
          if (c) out.push({ type: 'conversation', conversation: c, change: e.payload?.change as ConversationChange | undefined });
          break;
        }
        case 'message_changed': {
          const c = changed.get(e.seq);
          if (c) out.push(c);
          break;
        }
        default:
          // A type this release does not know (written by a newer one during a rolling deploy)
          // passes through as stored: clients skip the types they do not know.
          out.push({ type: e.type, ...e.payload } as unknown as StreamEvent);
      }
    }
    return out;
  }
}
