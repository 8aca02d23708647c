// Waiting, for the tests, the benchmarks and the chaos suite: a pause, a condition polled until it
// holds, and the clock of intervals (where one starts, when the next one does).
import { sleep } from '../../lib/shared/util.js';

export { sleep };

/** Waits until `fn` is true (polled every 50 ms), or fails after `timeoutMs`; resolves to the time it took. */
export async function until(fn: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await fn()) return Date.now() - start;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Resolves at wall-clock time `t` (at once when it has passed). */
export function sleepUntil(t: number): Promise<void> {
  return sleep(Math.max(0, t - Date.now()));
}

/** The start of the interval holding `t`. */
export function intervalStart(t: number, intervalMs: number): number {
  return Math.floor(t / intervalMs) * intervalMs;
}

/** The first interval boundary at or after `t`. */
export function nextBoundary(t: number, intervalMs: number): number {
  return Math.ceil(t / intervalMs) * intervalMs;
}
