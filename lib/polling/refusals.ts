// The log line for Mockstagram answers the client refuses: the first at once, then at most one a
// minute with how many were refused since, so a broken upstream never writes a line per sample.
import type { Logger } from '../shared/log.js';

/** At most one line per this many ms, whatever the rate of refused answers. */
export const REFUSAL_LOG_EVERY_MS = 60_000;

export class RefusalLog {
  private lastLineAt = -Infinity;
  private since = 0;

  constructor(
    private readonly log: Logger | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** One refused answer: its pk, the fetch error it is counted as, and why it was refused. */
  note(pk: number, kind: string, reason: string): void {
    this.since++;
    const now = this.now();
    if (now - this.lastLineAt < REFUSAL_LOG_EVERY_MS) return;
    const refused = this.since;
    this.lastLineAt = now;
    this.since = 0;
    const why = 'counted as fetch errors, never stored; at most one such line a minute';
    this.log?.warn({ pk, kind, reason, refused }, `Mockstagram answers refused (${why})`);
  }
}
