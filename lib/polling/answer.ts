// One parser reads a Mockstagram answer: what a status and body mean (a valid influencer, an
// unknown pk, or a failure of some kind), and the checks a payload must pass to become a sample.

export interface Influencer {
  pk: number;
  username: string;
  followerCount: number;
  followingCount: number;
}

/** Why a fetch produced no sample; each kind is counted separately. */
export type FetchErrorKind =
  'timeout' | 'connect' | 'http_5xx' | 'http_429' | 'http_other' | 'malformed_json' | 'invalid_payload';

/** The largest count a stored point holds: buckets and open buffers keep each count in 32 bits. */
export const MAX_COUNT = 2 ** 32 - 1;

/**
 * Validates a Mockstagram payload: the pk asked for, a username, integer counts from 0 to MAX_COUNT
 * (a larger one would wrap in the buckets). Returns the influencer or the reason it is refused.
 */
export function validateInfluencer(pk: number, body: unknown): Influencer | string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'not an object';
  const b = body as Record<string, unknown>;
  if (b.pk !== pk) return `pk ${JSON.stringify(b.pk)} is not ${pk}`;
  if (typeof b.username !== 'string' || b.username.length === 0 || b.username.length > 256) return 'bad username';
  for (const k of ['followerCount', 'followingCount'] as const) {
    const v = b[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_COUNT) {
      return `bad ${k} (${describe(v)}: not an integer in 0..${MAX_COUNT})`;
    }
  }
  // + 0 turns a -0 into 0
  return {
    pk,
    username: b.username,
    followerCount: (b.followerCount as number) + 0,
    followingCount: (b.followingCount as number) + 0,
  };
}

/** A refused value, short enough for a log line. */
function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  const text = typeof v === 'number' ? String(v) : `${typeof v} ${JSON.stringify(v)}`;
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

const NOT_FOUND = 'InfluencerNotFoundError';

/**
 * Whether an error answer says the pk is unknown: Mockstagram answers 400, 404 or 500 with a body
 * `{"error":{"name":"InfluencerNotFoundError"}}`. Anything else (a broken body too) is a failure.
 */
export function isNotFound(status: number, text: string): boolean {
  if ((status !== 400 && status !== 404 && status !== 500) || !text.includes(NOT_FOUND)) return false;
  try {
    return (JSON.parse(text) as { error?: { name?: string } }).error?.name === NOT_FOUND;
  } catch {
    return false;
  }
}
/** A failed attempt; `refused` says why an answer that arrived was not taken (logged, rate-limited). */
export type Attempt =
  | { kind: 'ok'; influencer: Influencer }
  | { kind: 'not_found' }
  | { kind: 'failed'; error: FetchErrorKind; retryAfterMs?: number; refused?: string };

/** What one answer means: a valid influencer, an unknown pk, or a failure of some kind (429 with its Retry-After). */
export function answer(pk: number, status: number, text: string, retryAfter: string | string[] | undefined): Attempt {
  if (status === 200) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return { kind: 'failed', error: 'malformed_json', refused: `not JSON: ${JSON.stringify(text.slice(0, 40))}` };
    }
    const v = validateInfluencer(pk, body);
    return typeof v === 'string'
      ? { kind: 'failed', error: 'invalid_payload', refused: v }
      : { kind: 'ok', influencer: v };
  }
  if (isNotFound(status, text)) return { kind: 'not_found' };
  if (status === 429) {
    const seconds = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
    return {
      kind: 'failed',
      error: 'http_429',
      retryAfterMs: Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 1000,
    };
  }
  return { kind: 'failed', error: status >= 500 ? 'http_5xx' : 'http_other' };
}
