import type { Logger } from 'pino';
import type { Blobs } from '../blobs/blobs.js';
import type { Store } from '../store/store.js';
import { Periodic } from './periodic.js';

/** Conversations per transaction. */
const PAGE = 200;
/** How often each node purges. */
const EVERY_MS = 30_000;

/**
 * RETENTION=until-delivered (a relay, the seed's "Architecture II"): once a device of every member
 * but its sender has acknowledged a message, its text and its files are deleted. The row stays
 * as a tombstone (seq, sender, time) because unread counts and read receipts are worked out from
 * it; history, stream replays and conversation lists skip tombstones, so clients keep their own
 * copies. Every node runs it; two at once are harmless (rows are locked, deletes idempotent).
 */
export class Retention {
  private readonly periodic: Periodic;

  constructor(
    private readonly store: Store,
    private readonly blobs: Blobs,
    private readonly log: Logger,
  ) {
    this.periodic = new Periodic(() => this.purge(), log, 'retention run');
  }

  /** Purge every delivered message now; resolves how many were emptied. */
  async purge(): Promise<number> {
    let total = 0;
    let after: string | null = '';
    while (after !== null) {
      const page: { messages: number; blobKeys: string[]; lastId: string | null } = await this.store.purgeDelivered(after, PAGE);
      total += page.messages;
      // After the commit: a blob whose delete fails is an orphan (npm run sweep-blobs), never a row without its blob
      for (const key of page.blobKeys) {
        await this.blobs.delete(key).catch((err: unknown) => this.log.error({ err, key }, 'could not remove a delivered file'));
      }
      after = page.lastId;
    }
    if (total > 0) this.log.debug({ messages: total }, 'emptied delivered messages');
    return total;
  }

  /** Purge every `everyMs` until stopped. */
  start(everyMs = EVERY_MS): void {
    this.periodic.start(everyMs, everyMs);
  }

  /** Stop, letting a run in progress finish. */
  async stop(): Promise<void> {
    await this.periodic.stop();
  }
}
