import type { Logger } from 'pino';
import { pruneAcknowledgedEvents } from '../store/events-prune.js';
import type { Store } from '../store/store.js';
import { Periodic } from './periodic.js';

/** Users per statement: a page's deletes stay one short transaction. */
const PAGE = 500;
/** Hourly: the retention is days; a run finds little more than an hour's worth. */
const EVERY_MS = 3_600_000;

/**
 * Stream entries acknowledged and older than the retention (EVENTS_RETENTION_DAYS) are deleted,
 * so the events table holds about that many days of traffic instead of all of it. Every node runs
 * it; two at once delete the same rows harmlessly.
 */
export class EventsPruning {
  private readonly periodic: Periodic;

  constructor(
    private readonly store: Store,
    private readonly retentionMs: number,
    private readonly log: Logger,
  ) {
    this.periodic = new Periodic(() => this.run(), log, 'events pruning');
  }

  /** Prune now, every user; resolves how many entries went. */
  async run(now = Date.now()): Promise<number> {
    const before = new Date(now - this.retentionMs);
    let total = 0;
    let after: number | null = 0;
    while (after !== null) {
      const page: { deleted: number; lastUser: number | null } = await pruneAcknowledgedEvents(this.store.db, before, after, PAGE);
      total += page.deleted;
      after = page.lastUser;
    }
    if (total > 0) this.log.info({ entries: total, before }, 'pruned acknowledged stream entries');
    return total;
  }

  /** First run within a minute (spread over the nodes), then hourly. */
  start(): void {
    this.periodic.start(Math.floor(Math.random() * 60_000), EVERY_MS);
  }

  /** Stop, letting a run in progress finish. */
  async stop(): Promise<void> {
    await this.periodic.stop();
  }
}
