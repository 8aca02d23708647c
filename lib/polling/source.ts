import { Pool } from 'undici';
import type { Logger } from '../ops/log.js';
import { sleep } from '../shared/util.js';
import { RefusalLog } from './refusals.js';

export interface Influencer {
  pk: number;
  username: string;
  followerCount: number;
  followingCount: number;
}

/** Why a fetch produced no sample; each kind is counted separately. */
export type FetchErrorKind =
  'timeout' | 'connect' | 'http_5xx' | 'http_429' | 'http_other' | 'malformed_json' | 'invalid_payload';

export type FetchResult =
  | { kind: 'ok'; influencer: Influencer; attempts: number }
  | { kind: 'not_found' }
  | { kind: 'failed'; error: FetchErrorKind; attempts: number };

export interface SourceOptions {
  /** most requests in flight (pool connections) */
  connections: number;
  timeoutMs: number;
  maxAttempts?: number;
  /** the clock deadlines are given in */
  now?: () => number;
  /** where refused answers are reported (rate-limited) */
  log?: Logger;
}

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
/** An influencer answer is about 100 bytes, an is_suspicious one less: a body past this is refused unread. */
export const MAX_BODY_BYTES = 64 * 1024;

/** A fetch Response's body as text, or null (and the rest left unread) when it passes `maxBytes`. */
export async function readBodyUpTo(res: Response, maxBytes = MAX_BODY_BYTES): Promise<string | null> {
  if (Number(res.headers.get('content-length') ?? 0) > maxBytes) {
    await res.body?.cancel();
    return null;
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks).toString('utf8');
    size += value.byteLength;
    if (size > maxBytes) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
}

class BodyTooLarge extends Error {}

/** A failed attempt; `refused` says why an answer that arrived was not taken (logged, rate-limited). */
type Attempt =
  | { kind: 'ok'; influencer: Influencer }
  | { kind: 'not_found' }
  | { kind: 'failed'; error: FetchErrorKind; retryAfterMs?: number; refused?: string };

/** What one answer means: a valid influencer, an unknown pk, or a failure of some kind (429 with its Retry-After). */
function answer(pk: number, status: number, text: string, retryAfter: string | string[] | undefined): Attempt {
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

/**
 * A Mockstagram URL's credentials (`http://user:password@host`) as a basic Authorization header,
 * and the URL without them: neither undici's origin nor fetch() would carry them (fetch refuses
 * such a URL outright).
 */
export function apiAddress(raw: string): { url: URL; authorization?: string } {
  const url = new URL(raw);
  if (url.username === '' && url.password === '') return { url };
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  const authorization = `Basic ${Buffer.from(credentials).toString('base64')}`;
  url.username = '';
  url.password = '';
  return { url, authorization };
}

/**
 * The per-interval Mockstagram client: undici's Pool over keep-alive connections (≈ 50 µs of CPU
 * per request here, against ≈ 370 µs for ky on fetch: see BENCHMARKS.md), driven through its
 * `dispatch` handler API, which the profile showed cheaper than `request` (BENCHMARKS.md, scenario 8). A request times out
 * after `timeoutMs`; transient failures (timeouts, connection errors, 5xx, 429, bad bodies) are
 * retried with backoff while the deadline allows, 429 after its Retry-After.
 */
export class MockstagramClient {
  private readonly pool: Pool;
  private readonly headers: Record<string, string>;
  private readonly maxAttempts: number;
  private readonly basePath: string;
  private readonly now: () => number;
  private readonly refusals: RefusalLog;

  constructor(baseUrl: string, opts: SourceOptions) {
    const { url, authorization } = apiAddress(baseUrl);
    this.headers = authorization ? { authorization } : {};
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: opts.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connectTimeout: Math.min(opts.timeoutMs, 5000),
    });
    this.maxAttempts = opts.maxAttempts ?? 4;
    this.now = opts.now ?? Date.now;
    this.refusals = new RefusalLog(opts.log);
  }

  /** Fetches one influencer, retrying until `deadline` (epoch ms) or the attempt limit. */
  async fetch(pk: number, deadline: number, onError?: (kind: FetchErrorKind) => void): Promise<FetchResult> {
    let last: FetchErrorKind = 'timeout';
    for (let attempt = 1; attempt <= this.maxAttempts; attempt++) {
      // the backoff may have outlasted the deadline (the process paused): a retry now is stale
      if (attempt > 1 && this.now() >= deadline) break;
      const r = await this.once(pk);
      if (r.kind === 'ok') return { kind: 'ok', influencer: r.influencer, attempts: attempt };
      if (r.kind === 'not_found') return r;
      last = r.error;
      onError?.(r.error);
      if (r.refused) this.refusals.note(pk, r.error, r.refused);
      const wait = r.retryAfterMs ?? Math.min(2000, 100 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      if (this.now() + wait + 50 >= deadline) break;
      await sleep(wait);
    }
    return { kind: 'failed', error: last, attempts: this.maxAttempts };
  }

  /** One request through `dispatch` with a handler that only keeps the body: no promise-wrapped body stream per response. */
  private once(pk: number): Promise<Attempt> {
    return new Promise((resolve) => {
      let status = 0;
      let retryAfter: string | string[] | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      this.pool.dispatch(
        { method: 'GET', path: `${this.basePath}/api/v1/influencers/${pk}`, headers: this.headers },
        {
          onRequestStart() {
            /* nothing to set up */
          },
          onResponseStart(_controller, statusCode, headers) {
            status = statusCode;
            retryAfter = headers['retry-after'];
          },
          onResponseData(controller, chunk) {
            size += chunk.length;
            if (size > MAX_BODY_BYTES) controller.abort(new BodyTooLarge());
            else chunks.push(chunk);
          },
          onResponseEnd() {
            const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
            resolve(answer(pk, status, text, retryAfter));
          },
          onResponseError(_controller, err) {
            if (err instanceof BodyTooLarge) {
              const refused = `a body over ${MAX_BODY_BYTES} bytes`;
              return resolve({ kind: 'failed', error: 'invalid_payload', refused });
            }
            const code = (err as { code?: string }).code ?? '';
            resolve({ kind: 'failed', error: /TIMEOUT/.test(code) ? 'timeout' : 'connect' });
          },
        },
      );
    });
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }
}
