import type { Logger } from 'pino';
import type { Blobs } from '../blobs/blobs.js';
import type { Store } from '../store/store.js';

/** The kinds of blob Parley writes: files (`f`), thumbnails (`t`), archive chunks (`archive`). */
const KINDS = ['f', 't', 'archive'] as const;
/** Keys checked against the database per query. */
const BATCH = 2000;

/** What a sweep found and did. */
export interface SweepReport {
  checked: number;
  orphans: number;
  removed: number;
}

/**
 * Remove blobs no row refers to: what a crash leaves between storing a blob and committing its
 * row (an upload, an archive chunk), or a delete that failed after its row went. Only blobs older
 * than `olderThanMs` are considered, so work in progress (an upload is at most minutes between
 * blob and row) is never touched. `dryRun` counts without removing.
 */
export async function sweepOrphanBlobs(
  store: Store,
  blobs: Blobs,
  log: Logger,
  opts: { olderThanMs: number; dryRun?: boolean },
): Promise<SweepReport> {
  const cutoff = Date.now() - opts.olderThanMs;
  const report: SweepReport = { checked: 0, orphans: 0, removed: 0 };
  const settle = async (batch: string[]) => {
    const used = await store.referencedBlobs(batch);
    for (const key of batch) {
      if (used.has(key)) continue;
      report.orphans++;
      if (opts.dryRun) continue;
      await blobs.delete(key);
      report.removed++;
    }
    batch.length = 0;
  };
  for (const kind of KINDS) {
    const batch: string[] = [];
    for await (const b of blobs.list(kind)) {
      if (b.modified.getTime() >= cutoff) continue;
      report.checked++;
      batch.push(b.key);
      if (batch.length >= BATCH) await settle(batch);
    }
    await settle(batch);
  }
  log.info({ ...report, dryRun: Boolean(opts.dryRun) }, 'blob sweep done');
  return report;
}
