// Which pks already have a point for an interval, read from the running totals in Redis (the one
// arbiter of what is stored): the poller asks before catching up pks a live member handed it.
import type { Totals } from '../storage/state/totals.js';

/** Answers, for each pk, whether a point of interval `at` is stored. */
export type StoredCheck = (pks: readonly number[], at: number) => Promise<boolean[]>;

/** Pks asked per round: one HMGET per slice each. */
const CHUNK = 5000;

/**
 * A pk's point of `at` is stored when the pk's latest interval is `at`, or the one it replaced is
 * (a point of the next interval came since). Anything else reads as not stored: a repeat fetch
 * costs a request, a skipped one costs the point.
 */
export function storedIn(totals: Totals): StoredCheck {
  return async (pks, at) => {
    const out: boolean[] = [];
    for (let i = 0; i < pks.length; i += CHUNK) out.push(...(await totals.stored(pks.slice(i, i + CHUNK), at)));
    return out;
  };
}
