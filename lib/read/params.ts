// The read API's inputs, each checked into a value or refused with a 400 that names the parameter,
// the value and what is allowed (the same rules the OpenAPI document states).
import { parsePk } from '../ring/pk-universe.js';
import { MAX_DATE_MS, parseTime } from '../shared/util.js';

export { TIME_PATTERN } from '../shared/util.js';

/** Longest timeline range one request may read. */
export const MAX_RANGE_DAYS = 31;
export const MAX_RANGE_MS = MAX_RANGE_DAYS * 86_400_000;
export const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 10;
const DEFAULT_RANGE_MS = 3_600_000;

/** A request the API refuses: answered with `status` and `{"error": message}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The pk of a path segment, within the universe the cluster tracks. */
export function pkParam(encoded: string, pkMin: number, pkMax: number): number {
  let raw = encoded;
  try {
    raw = decodeURIComponent(encoded);
  } catch {
    /* shown as sent */
  }
  const parsed = parsePk(raw, pkMin, pkMax);
  if ('error' in parsed) throw new HttpError(400, parsed.error);
  return parsed.pk;
}

/** A time parameter: an ISO time with an offset or epoch milliseconds, else a 400 naming it. */
function timeParam(name: string, raw: string): number {
  try {
    return parseTime(raw);
  } catch (err) {
    throw new HttpError(400, `${name}=${JSON.stringify(raw)} is not valid: ${(err as Error).message}`);
  }
}

/** [from, to) of a timeline: default the last hour, at most MAX_RANGE_DAYS days. */
export function rangeParams(q: URLSearchParams, now: number): { from: number; to: number } {
  const toRaw = q.get('to');
  const fromRaw = q.get('from');
  const to = toRaw === null ? now : timeParam('to', toRaw);
  const from = fromRaw === null ? Math.max(-MAX_DATE_MS, to - DEFAULT_RANGE_MS) : timeParam('from', fromRaw);
  if (from > to)
    throw new HttpError(400, `from is after to: ${new Date(from).toISOString()} > ${new Date(to).toISOString()}`);
  if (to - from > MAX_RANGE_MS) {
    const days = Math.ceil((to - from) / 86_400_000);
    throw new HttpError(400, `range of ${days} days is too long: at most ${MAX_RANGE_DAYS} days`);
  }
  return { from, to };
}

/** sort and limit of a top list. */
export function topParams(q: URLSearchParams): { sort: 'followers' | 'growth'; limit: number } {
  const sort = q.get('sort') ?? 'followers';
  if (sort !== 'followers' && sort !== 'growth') {
    throw new HttpError(400, `sort=${JSON.stringify(sort)} is not valid: expected followers or growth`);
  }
  const limitRaw = q.get('limit');
  const limit = limitRaw === null ? DEFAULT_LIMIT : Number(limitRaw);
  if (limitRaw !== null && (!/^\d+$/.test(limitRaw) || limit < 1 || limit > MAX_LIMIT)) {
    throw new HttpError(
      400,
      `limit=${JSON.stringify(limitRaw)} is not valid: expected an integer from 1 to ${MAX_LIMIT}`,
    );
  }
  return { sort, limit };
}
