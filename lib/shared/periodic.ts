import type { Logger } from './log.js';

/**
 * A background job that runs, then schedules its next run `everyMs` after the last one ended
 * (setTimeout, never setInterval: a slow run never overlaps the next). A failed run is logged once
 * per distinct error and retried at the next tick. `stop()` waits for a run in progress.
 */
export class PeriodicJob {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = true;
  private lastError?: string;

  constructor(
    private readonly run: () => Promise<unknown>,
    private readonly log: Logger,
    private readonly failure: string,
  ) {}

  start(everyMs: number, firstAfterMs = 0): void {
    this.stopped = false;
    const loop = async (): Promise<void> => {
      this.running = this.run().then(
        () => {
          this.lastError = undefined;
        },
        (err: Error) => {
          if (err.message !== this.lastError) this.log.warn({ err: err.message }, this.failure);
          this.lastError = err.message;
        },
      );
      await this.running;
      if (!this.stopped) this.timer = setTimeout(loop, everyMs);
    };
    this.timer = setTimeout(loop, firstAfterMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }
}
