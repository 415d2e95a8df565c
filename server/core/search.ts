import type { Principal } from './accounts.js';
import type { Messaging, MessageView } from './messaging.js';

/** Results per search call: default and most. */
export const SEARCH_DEFAULT = 20;
export const SEARCH_MAX = 50;
/** Messages one call opens and looks through at most; `next` continues from where it stopped. */
export const SEARCH_SCAN = 1000;
/** Messages read from table or archive at a time. */
const SEARCH_PAGE = 200;

/** What a search asks: the text (1-100 characters, checked at the edge), and the page. */
export interface SearchQuery {
  q: string;
  limit?: number | undefined;
  /** Only messages with seq below this (a previous answer's `next`). */
  before?: number | undefined;
}

/** A page of results: newest first; `next` (a seq) when there is more to look through. */
export interface SearchResult {
  messages: MessageView[];
  next?: number;
}

/**
 * Search within a conversation. Texts are sealed at rest, so the server opens them here, and only
 * those the member may read: the same rule as history (a member who joined a group showing
 * newcomers only what follows reads nothing from before), archived messages included. The work of
 * one call is bounded: it looks through at most `scan` messages, newest first, and answers `next`
 * to go on from there.
 */
export class Search {
  constructor(
    private readonly messaging: Messaging,
    private readonly scan = SEARCH_SCAN,
  ) {}

  async search(me: Principal, conversationId: unknown, query: SearchQuery): Promise<SearchResult> {
    const conv = await this.messaging.requireMember(conversationId, me);
    const limit = Math.min(query.limit ?? SEARCH_DEFAULT, SEARCH_MAX);
    const needle = fold(query.q);
    const found: MessageView[] = [];
    let bound = query.before ?? Number.MAX_SAFE_INTEGER;
    let scanned = 0;
    while (bound > conv.fromSeq + 1 && scanned < this.scan) {
      const take = Math.min(SEARCH_PAGE, this.scan - scanned);
      const rows = (await this.messaging.archive.history(conv.id, bound, take)).filter((m) => m.seq > conv.fromSeq);
      if (rows.length === 0) return { messages: found };
      const views = await this.messaging.renderMessages(me, rows);
      // newest first
      for (let i = views.length - 1; i >= 0; i--) {
        const m = views[i]!;
        scanned++;
        bound = m.seq;
        if (m.text !== '' && fold(m.text).includes(needle)) {
          found.push(m);
          if (found.length >= limit) return bound > conv.fromSeq + 1 ? { messages: found, next: bound } : { messages: found };
        }
      }
      // The page ended at the oldest row the store had (or at what I may read): nothing older
      if (rows.length < take || rows[0]!.seq <= conv.fromSeq + 1) return { messages: found };
      bound = rows[0]!.seq;
    }
    return bound > conv.fromSeq + 1 ? { messages: found, next: bound } : { messages: found };
  }
}

/** Case-insensitive comparison form: lower case, by Unicode's rules rather than the server's locale. */
function fold(s: string): string {
  return s.normalize('NFKC').toLowerCase();
}
