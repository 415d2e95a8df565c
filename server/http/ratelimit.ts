import { errors } from '../core/errors.js';

/**
 * A fixed-window counter per key, in this node's memory: cheap enough for every request. Limits
 * that matter across nodes (failed logins) use the bus's shared counters instead.
 */
export class WindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly enabled: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count one hit; throws 429 with Retry-After when over the limit. */
  hit(key: string): void {
    if (!this.enabled) return;
    const t = this.now();
    let w = this.windows.get(key);
    if (!w || t - w.start >= this.windowMs) {
      if (this.windows.size > 100_000) this.prune(t);
      w = { start: t, count: 0 };
      this.windows.set(key, w);
    }
    w.count++;
    if (w.count > this.limit) throw errors.rateLimited((w.start + this.windowMs - t) / 1000);
  }

  private prune(t: number): void {
    for (const [k, w] of this.windows) if (t - w.start >= this.windowMs) this.windows.delete(k);
  }
}
