import type { Logger } from 'pino';

/**
 * A background job run again and again: the next run is scheduled when the last one ends (never
 * two at once), a failed run is logged and the next one retries, and `stop` lets a run in
 * progress finish. Timers are unref'd: they never keep a process alive.
 */
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly job: () => Promise<unknown>,
    private readonly log: Logger,
    private readonly what: string,
  ) {}

  /** First run after `firstMs`, then `everyMs` after each run ends. */
  start(firstMs: number, everyMs: number): void {
    const tick = () => {
      this.running = this.job()
        .catch((err: unknown) => this.log.warn({ err }, `${this.what} failed; the next run retries`))
        .finally(() => {
          this.running = undefined;
          if (this.timer) this.timer = setTimeout(tick, everyMs).unref();
        });
    };
    this.timer = setTimeout(tick, firstMs).unref();
  }

  /** No more runs; resolves when one in progress has finished. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
