import type { Store, StoredMessage } from '../store/store.js';
import { normaliseName, type Principal } from './accounts.js';
import type { Archive } from './archive.js';
import { errors } from './errors.js';
import { HISTORY_MAX, type Messaging, type MessageView } from './messaging.js';

/** Messages per archive-query page when the client gives no `max`. */
export const QUERY_DEFAULT = 50;
/** Windows of seqs a forward page reads before it gives up filling (gaps left by emptied messages). */
const FORWARD_WINDOWS = 20;
/** Messages an id lookup walks back through the archive before it calls the id unknown. */
const ARCHIVE_ID_SCAN = 20 * HISTORY_MAX;

/** A query over one conversation's history, as XEP-0313 with XEP-0059 asks it (ids are message ids). */
export interface HistoryQuery {
  /** Only messages sent at or after this instant. */
  start?: Date;
  /** Only messages sent at or before this instant. */
  end?: Date;
  /** Only messages after the one with this id (forward paging). */
  afterId?: string;
  /** Only messages before the one with this id; '' means "the last page" (backward paging). */
  beforeId?: string;
  /** Page size (1-200). */
  max: number;
}

/** One page: oldest first; `complete` when no message matching the query lies beyond it in the paging direction. */
export interface HistoryPage {
  messages: MessageView[];
  complete: boolean;
}

/**
 * Archive queries (XEP-0313's model) over Parley's history: the same reading as the JSON history
 * (`Messaging.history`'s membership rule and the archive's table-then-chunks read), paged forward
 * or backward by message id and bounded by time. Seqs order a conversation; sent_at grows with seq
 * (assigned at commit), so a time bound is found by bisection over seqs.
 */
export class HistoryQueries {
  constructor(
    private readonly store: Store,
    private readonly messaging: Messaging,
    private readonly archive: Archive,
  ) {}

  /** My direct conversation with a user, if one exists (never created by a query); null otherwise. */
  async directWith(me: Principal, rawName: unknown): Promise<string | null> {
    let name: string;
    try {
      name = normaliseName(rawName);
    } catch {
      return null;
    }
    if (name === me.name) return null;
    const other = await this.store.userByName(name);
    if (!other) return null;
    const conv = await this.store.directConversation(me.id, Number(other.id));
    return conv && conv.member ? conv.id : null;
  }

  /** A page of a conversation I am a member of (404/403 otherwise; an unknown cursor id: 404 `item`). */
  async page(me: Principal, conversationId: string, q: HistoryQuery): Promise<HistoryPage> {
    const conv = await this.messaging.requireMember(conversationId, me);
    const max = Math.min(Math.max(1, Math.floor(q.max)), HISTORY_MAX);
    // The window of seqs, both bounds exclusive: nothing from before I joined, nothing past the last.
    let lo = conv.fromSeq;
    let hi = Number(conv.last_seq) + 1;
    if (q.afterId !== undefined) lo = Math.max(lo, await this.seqOf(conv.id, q.afterId, hi));
    if (q.beforeId) hi = Math.min(hi, await this.seqOf(conv.id, q.beforeId, hi));
    if (q.start) lo = Math.max(lo, (await this.firstAtOrAfter(conv.id, q.start, lo, hi)) - 1);
    if (q.end) hi = Math.min(hi, (await this.firstAtOrAfter(conv.id, new Date(q.end.getTime() + 1), lo, hi)));
    if (hi - lo <= 1) return { messages: [], complete: true };

    let rows: StoredMessage[];
    let complete: boolean;
    if (q.beforeId !== undefined) {
      // Backward: the newest max below hi; one more tells whether older ones remain.
      const got = (await this.archive.history(conv.id, hi, max + 1)).filter((m) => m.seq > lo);
      complete = got.length <= max;
      rows = got.slice(-max);
    } else {
      // Forward: windows of seqs above lo until max + 1 are found or hi is reached.
      const got: StoredMessage[] = [];
      let cur = lo;
      let windows = 0;
      while (got.length <= max && cur < hi - 1 && windows < FORWARD_WINDOWS) {
        const want = max + 1 - got.length;
        const upper = Math.min(hi, cur + want + 1);
        got.push(...(await this.archive.history(conv.id, upper, upper - cur - 1)).filter((m) => m.seq > cur));
        cur = upper - 1;
        windows++;
      }
      complete = got.length <= max && cur >= hi - 1;
      rows = got.slice(0, max);
    }
    return { messages: await this.messaging.renderMessages(me, rows), complete };
  }

  /** The seq of a message of the conversation by id: the table first, then back through the archive. */
  private async seqOf(conversationId: string, id: string, hi: number): Promise<number> {
    if (typeof id !== 'string' || id.length > 64) throw errors.notFound('item');
    const inTable = await this.store.messageSeq(conversationId, id);
    if (inTable !== null) return inTable;
    let before = hi;
    for (let scanned = 0; scanned < ARCHIVE_ID_SCAN; scanned += HISTORY_MAX) {
      const page = await this.archive.history(conversationId, before, HISTORY_MAX);
      const hit = page.find((m) => m.id === id);
      if (hit) return hit.seq;
      if (page.length === 0) break;
      before = page[0]!.seq;
    }
    throw errors.notFound('item');
  }

  /** The lowest seq in (lo, hi) whose message was sent at or after `at` (hi when none). */
  private async firstAtOrAfter(conversationId: string, at: Date, lo: number, hi: number): Promise<number> {
    // Invariant: messages with seq <= a are before `at`, those with seq >= b are not.
    let a = lo;
    let b = hi;
    while (b - a > 1) {
      const mid = Math.floor((a + b) / 2);
      // The newest message at or below mid (gaps: emptied messages are not read)
      const [m] = await this.archive.history(conversationId, mid + 1, 1);
      if (!m || m.seq <= a) {
        a = mid;
        continue;
      }
      if (m.sentAt.getTime() >= at.getTime()) b = m.seq;
      else a = mid;
    }
    return b;
  }
}
