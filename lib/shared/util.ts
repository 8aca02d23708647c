// Small helpers used across the library: one of each.

/** 2^32: a 32-bit hash as a fraction of the interval is `hash / TWO_32` (the slot of a pk). */
export const TWO_32 = 2 ** 32;

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** First index in [lo, hi) of the ascending `sorted` whose value is ≥ `value` (hi if none). */
export function lowerBound(sorted: ArrayLike<number>, value: number, lo = 0, hi = sorted.length): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index in [lo, hi) of the ascending `sorted` whose value is > `value` (hi if none). */
export function upperBound(sorted: ArrayLike<number>, value: number, lo = 0, hi = sorted.length): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Largest |epoch ms| a Date holds. */
export const MAX_DATE_MS = 8.64e15;

/**
 * What a time may be (parseTime, and the read API's contract): an ISO 8601 date-time with an offset
 * (Z or ±hh:mm), or epoch milliseconds of 12 digits or more (from 1973 on: fewer digits are a year,
 * 2026, or epoch seconds, not the time meant).
 */
export const TIME_PATTERN =
  '^(\\d{12,}|\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|z|[+-]\\d{2}:?\\d{2}))$';
const TIME = new RegExp(TIME_PATTERN);

/**
 * A time that says which instant it is: an ISO time with an offset or epoch milliseconds, within
 * the times a Date holds; otherwise a RangeError saying what was expected (the caller names the flag
 * or parameter). A time without an offset would be read in the reader's time zone: refused.
 */
export function parseTime(raw: string): number {
  const text = raw.trim();
  const expected =
    'expected an ISO time with an offset (2026-11-27T10:00Z, 2026-11-27T11:00+01:00) or epoch milliseconds';
  if (/^\d{1,11}$/.test(text)) {
    throw new RangeError(`${expected} (12 digits or more: ${text} would be ${new Date(Number(text)).toISOString()})`);
  }
  if (/^\d{4}-\d{2}-\d{2}(T[\d:.]+)?$/.test(text)) throw new RangeError(`${expected}: this one has no offset`);
  const t = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  if (!TIME.test(text) || !Number.isFinite(t)) throw new RangeError(expected);
  if (Math.abs(t) > MAX_DATE_MS) {
    throw new RangeError(
      `expected a time from ${new Date(-MAX_DATE_MS).toISOString()} to ${new Date(MAX_DATE_MS).toISOString()}`,
    );
  }
  return t;
}

/** 0..n-1 in random order (Fisher-Yates): nodes walking the same list start at different places. */
export function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
