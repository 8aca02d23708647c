import { Pool, type Dispatcher } from 'undici';
import type { Logger } from '../shared/log.js';
import { sleep } from '../shared/util.js';
import { RefusalLog } from './refusals.js';
import { answer, type Attempt, type FetchErrorKind, type Influencer } from './answer.js';

export type { FetchErrorKind, Influencer };

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

/** An influencer answer is about 100 bytes, an is_suspicious one less: a body past this is refused unread. */
export const MAX_BODY_BYTES = 64 * 1024;

/** A body still arriving at its deadline (a trickle of bytes keeps any idle timeout from firing). */
export class BodyTimeout extends Error {}

/**
 * A fetch Response's body as text, or null (and the rest left unread) when it passes `maxBytes`;
 * throws BodyTimeout (the rest cancelled) when it is not all there by `deadline` (epoch ms).
 */
export async function readBodyUpTo(
  res: Response,
  maxBytes = MAX_BODY_BYTES,
  deadline = Infinity,
): Promise<string | null> {
  if (Number(res.headers.get('content-length') ?? 0) > maxBytes) {
    await res.body?.cancel();
    return null;
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    if (deadline !== Infinity) timer = setTimeout(() => reject(new BodyTimeout()), Math.max(0, deadline - Date.now()));
  });
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), late]);
      if (done) return Buffer.concat(chunks).toString('utf8');
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel();
        return null;
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof BodyTimeout) await reader.cancel().catch(() => undefined);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

class BodyTooLarge extends Error {}
class AttemptTimeout extends Error {}

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
  private readonly timeoutMs: number;

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
    this.timeoutMs = opts.timeoutMs;
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
      // no backoff after the last attempt: it would only hold a polling slot
      if (attempt === this.maxAttempts) return { kind: 'failed', error: last, attempts: attempt };
      const wait = r.retryAfterMs ?? Math.min(2000, 100 * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
      if (this.now() + wait + 50 >= deadline) return { kind: 'failed', error: last, attempts: attempt };
      await sleep(wait);
    }
    return { kind: 'failed', error: last, attempts: this.maxAttempts };
  }

  /**
   * One request through `dispatch` with a handler that only keeps the body: no promise-wrapped body
   * stream per response. undici's headers and body timeouts bound each wait between bytes; the
   * attempt's own timer bounds the whole answer, which a body trickling a byte a second never would.
   */
  private once(pk: number): Promise<Attempt> {
    return new Promise((whenDone) => {
      let status = 0;
      let retryAfter: string | string[] | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      let started: Dispatcher.DispatchController | undefined;
      let done = false;
      const resolve = (a: Attempt): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        whenDone(a);
      };
      const timer = setTimeout(() => {
        resolve({ kind: 'failed', error: 'timeout' });
        started?.abort(new AttemptTimeout());
      }, this.timeoutMs);
      this.pool.dispatch(
        { method: 'GET', path: `${this.basePath}/api/v1/influencers/${pk}`, headers: this.headers },
        {
          onRequestStart(controller) {
            started = controller;
            // timed out while queued for a connection
            if (done) controller.abort(new AttemptTimeout());
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

  /** Closes the connection pool (waits for requests in flight). */
  async stop(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }
}
