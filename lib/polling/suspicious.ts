import ky, { HTTPError, TimeoutError, type KyInstance } from 'ky';
import type { Collection } from 'mongodb';
import type { Logger } from '../shared/log.js';
import type { OwnedSet } from '../ring/ownership.js';
import { SlotWalk } from './slots.js';
import { isNotFound } from './answer.js';
import { apiAddress, BodyTimeout, readBodyUpTo } from './source.js';
import { answerId, type SuspiciousDoc } from '../storage/format/documents.js';
import { isDuplicateKey } from '../shared/mongo-errors.js';
import { PeriodicJob } from '../shared/services.js';
import type { InfluencerTotals } from '../storage/state/totals.js';

export interface SuspiciousOptions {
  mockstagramUrl: string;
  /** each owned pk is checked once per period (aligned to UTC), at the offset hash/2^32 of it */
  intervalMs: number;
  concurrency: number;
  timeoutMs: number;
  /** the older POST /api/v1/influencers/is_suspicious with the latest counts as body */
  post: boolean;
  /** how soon a pk is tried again after a failure or before its first sample is stored */
  retryMs?: number;
  /** tries per pk and period */
  maxTries?: number;
  now?: () => number;
}

export interface SuspiciousDeps {
  /** the node's owned pks, sorted by hash (the same object until ownership changes) */
  owned: () => OwnedSet;
  /** where each answer is stored (the `suspicious` collection) */
  /** the collection of a check period's answers */
  answers: (periodStart: number) => Collection<SuspiciousDoc>;
  totals: {
    read(pk: number): Promise<InfluencerTotals | null>;
    setSuspicious(pk: number, suspicious: boolean, at: number): Promise<void>;
  };
  log: Logger;
}

type CheckError = 'timeout' | 'connect' | 'http_5xx' | 'http_other' | 'malformed_json' | 'invalid_payload' | 'store';
type Outcome =
  | { kind: 'ok'; suspicious: boolean }
  | { kind: 'no_data' }
  | { kind: 'not_found' }
  | { kind: 'aborted' }
  | { kind: 'error'; error: CheckError };

/** Published in the member card (`stats.suspicious`). */
export interface SuspiciousStats {
  intervalMs: number;
  /** checks stored since start */
  checked: number;
  /** of which answered suspicious */
  flagged: number;
  errors: Partial<Record<CheckError, number>>;
  notFound: number;
  /** pks without a stored sample yet when their turn came (tried again later) */
  noData: number;
  /** due while its previous check was still running: skipped */
  skippedBusy: number;
  /** pks not reached before their period ended (concurrency too small for the owned pks) */
  missed: number;
  inFlight: number;
  lastCheckAt: string | null;
}

/**
 * Stores one is_suspicious answer in the `suspicious` collection (the durable copy, one document
 * per pk and period, from which a totals rebuild restores it) and next to the pk's totals in Redis
 * (what the influencer page reads). An insert, never an update: FerretDB 1.24 updates a document
 * by its numeric _id with a scan of the whole collection (about 0.9 s at 100,000 influencers),
 * holding the lock the timeline inserts wait for. A duplicate key means an answer for the period
 * is stored already (an earlier try whose copy failed, or another node's): that one is copied.
 */
export async function storeSuspicious(
  deps: Pick<SuspiciousDeps, 'answers' | 'totals'>,
  pk: number,
  suspicious: boolean,
  at: number,
  periodStart: number,
): Promise<void> {
  const _id = answerId(pk, periodStart);
  let kept: { suspicious: boolean; at: Date } = { suspicious, at: new Date(at) };
  try {
    await deps.answers(periodStart).insertOne({ _id, pk, ...kept });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    // a find by exact _id: an index lookup on MongoDB and on FerretDB
    kept = (await deps.answers(periodStart).findOne({ _id }, { projection: { suspicious: 1, at: 1 } })) ?? kept;
  }
  await deps.totals.setSuspicious(pk, kept.suspicious, kept.at.getTime());
}

const MAX_RETRY_QUEUE = 10_000;
const TICK_MAX_MS = 1000;

/**
 * The daily is_suspicious check of every owned pk, off the polling path: its own ky client, its own
 * small concurrency and timeout, so its slow answers (about a second, up to 10 s for the POST form)
 * never hold a polling slot. Pks are walked by hash like the scheduler, so checks are spread over
 * the day and a pk keeps its slot when another node takes it over (a node started or handed pks
 * mid-period checks them from their slot on, so a restart is no burst). The answer is stored as one
 * document per pk and day (an insert) and copied next to its totals in Redis. At most `concurrency` checks run; nothing
 * queues beyond the cursor: a pk not reached before its period ends is counted as missed.
 */
export class SuspiciousChecker {
  private readonly http: KyInstance;
  private readonly now: () => number;
  private readonly retryMs: number;
  private readonly maxTries: number;
  private readonly walk: SlotWalk;
  /** the owned set the walk follows (undefined: follow the next one read) */
  private ownedRef?: OwnedSet;
  private retries: Array<{ pk: number; notBefore: number; tries: number }> = [];
  private readonly running = new Set<number>();
  private readonly abort = new AbortController();
  /** the walk: each run starts the checks due and says when to look again */
  private readonly loop: PeriodicJob<number>;
  private stopped = true;
  private readonly idle: Array<() => void> = [];
  private readonly counters: Omit<SuspiciousStats, 'intervalMs' | 'inFlight' | 'errors' | 'lastCheckAt'> = {
    checked: 0,
    flagged: 0,
    notFound: 0,
    noData: 0,
    skippedBusy: 0,
    missed: 0,
  };
  private readonly errors: Partial<Record<CheckError, number>> = {};
  private lastCheckAt: number | null = null;

  constructor(
    private readonly opts: SuspiciousOptions,
    private readonly deps: SuspiciousDeps,
  ) {
    this.now = opts.now ?? Date.now;
    this.retryMs = opts.retryMs ?? Math.max(10, Math.min(60_000, Math.floor(opts.intervalMs / 4)));
    this.maxTries = opts.maxTries ?? 5;
    this.walk = new SlotWalk(opts.intervalMs);
    const { url, authorization } = apiAddress(opts.mockstagramUrl);
    const prefixUrl = url.href.endsWith('/') ? url.href : `${url.href}/`;
    const headers = authorization ? { authorization } : {};
    // a redirect is not followed: Mockstagram never sends one, and it could point anywhere
    const redirect = 'manual';
    this.http = ky.create({
      prefixUrl,
      timeout: opts.timeoutMs,
      retry: 0,
      signal: this.abort.signal,
      headers,
      redirect,
    });
    const failure = 'suspicious check walk failed';
    this.loop = new PeriodicJob(() => this.pump(), { log: deps.log, failure, everyMs: TICK_MAX_MS, next: (ms) => ms });
  }

  start(): void {
    if (!this.stopped || this.abort.signal.aborted) return;
    this.stopped = false;
    this.loop.start();
  }

  /** Stops the walk, aborts the requests in flight and resolves once none is running. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop.stop();
    this.abort.abort();
    if (this.running.size > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  stats(): SuspiciousStats {
    return {
      intervalMs: this.opts.intervalMs,
      ...this.counters,
      errors: { ...this.errors },
      inFlight: this.running.size,
      lastCheckAt: this.lastCheckAt === null ? null : new Date(this.lastCheckAt).toISOString(),
    };
  }

  /** Starts every due check the concurrency allows; returns how long to wait before looking again. */
  private pump(): number {
    const walk = this.walk;
    const now = this.now();
    const start = walk.startOf(now);
    const dueUpTo = walk.dueHash(now, start);
    if (start !== walk.interval) {
      const first = walk.interval < 0;
      this.rollOver(start);
      // started mid-period: the slots already past were the previous owner's (or wait for the next period)
      if (first) {
        walk.lastHash = Math.floor(dueUpTo);
        this.ownedRef = undefined;
      }
    }
    const owned = this.deps.owned();
    if (owned !== this.ownedRef) {
      // ownership changed: carry on after the last hash checked in this period
      this.ownedRef = owned;
      walk.follow(owned);
    }
    const free = (): boolean => this.running.size < this.opts.concurrency;
    while (free() && this.retries.length > 0 && this.retries[0].notBefore <= now) {
      const r = this.retries.shift()!;
      this.dispatch(r.pk, r.tries);
    }
    while (free()) {
      const i = walk.take(dueUpTo);
      if (i < 0) break;
      this.dispatch(owned.pks[i], 0);
    }
    if (!free()) return TICK_MAX_MS; // a finished check pumps again
    const nextDue = walk.nextDue();
    const nextRetry = this.retries.length > 0 ? this.retries[0].notBefore : Infinity;
    return Math.max(1, Math.min(TICK_MAX_MS, Math.min(nextDue, nextRetry) - now));
  }

  /** A new period: pks the cursor did not reach are missed; retries of the last period are dropped (each pk has a slot in this one). */
  private rollOver(start: number): void {
    if (this.walk.interval >= 0 && this.ownedRef) this.counters.missed += this.walk.left();
    this.retries = [];
    this.walk.restart(start);
  }

  private dispatch(pk: number, tries: number): void {
    if (this.running.has(pk)) {
      this.counters.skippedBusy++;
      return;
    }
    this.running.add(pk);
    void this.check(pk)
      .then((outcome) => {
        switch (outcome.kind) {
          case 'ok':
            this.counters.checked++;
            if (outcome.suspicious) this.counters.flagged++;
            this.lastCheckAt = this.now();
            break;
          case 'not_found':
            this.counters.notFound++;
            break;
          case 'aborted':
            break;
          case 'no_data':
            this.counters.noData++;
            this.retry(pk, tries);
            break;
          case 'error':
            this.errors[outcome.error] = (this.errors[outcome.error] ?? 0) + 1;
            this.retry(pk, tries);
            break;
        }
      })
      .finally(() => {
        this.running.delete(pk);
        if (this.running.size === 0) for (const resolve of this.idle.splice(0)) resolve();
        this.loop.runSoon(0);
      });
  }

  private retry(pk: number, tries: number): void {
    if (this.stopped || tries + 1 >= this.maxTries || this.retries.length >= MAX_RETRY_QUEUE) return;
    this.retries.push({ pk, notBefore: this.now() + this.retryMs, tries: tries + 1 });
  }

  /** Asks is_suspicious for one pk and stores the answer (its document of the day, and next to its totals). */
  private async check(pk: number): Promise<Outcome> {
    let totals: InfluencerTotals | null;
    try {
      // a pk without a stored sample has no document to flag yet (and the POST form needs its counts)
      totals = await this.deps.totals.read(pk);
    } catch {
      return { kind: 'error', error: 'store' };
    }
    if (!totals) return { kind: 'no_data' };
    let body: unknown;
    // ky's timeout ends with the headers: the body must be in by the same deadline
    const deadline = Date.now() + this.opts.timeoutMs;
    try {
      const res = this.opts.post
        ? await this.http.post('api/v1/influencers/is_suspicious', {
            json: {
              pk,
              username: totals.username,
              followerCount: totals.followerCount,
              followingCount: totals.followingCount,
            },
          })
        : await this.http.get(`api/v1/influencers/${pk}/is_suspicious`);
      const text = await readBodyUpTo(res, undefined, deadline);
      if (text === null) return { kind: 'error', error: 'invalid_payload' };
      try {
        body = JSON.parse(text);
      } catch {
        return { kind: 'error', error: 'malformed_json' };
      }
    } catch (err) {
      if (this.abort.signal.aborted) return { kind: 'aborted' };
      if (err instanceof TimeoutError || err instanceof BodyTimeout) return { kind: 'error', error: 'timeout' };
      if (err instanceof HTTPError) return this.httpFailure(err);
      return { kind: 'error', error: 'connect' };
    }
    const b = body as { pk?: unknown; suspicious?: unknown } | null;
    if (typeof b !== 'object' || b === null || b.pk !== pk || typeof b.suspicious !== 'boolean') {
      return { kind: 'error', error: 'invalid_payload' };
    }
    try {
      await storeSuspicious(this.deps, pk, b.suspicious, this.now(), this.walk.interval);
    } catch {
      return { kind: 'error', error: 'store' };
    }
    return { kind: 'ok', suspicious: b.suspicious };
  }

  private async httpFailure(err: HTTPError): Promise<Outcome> {
    const status = err.response.status;
    if (status === 400 || status === 404 || status === 500) {
      const deadline = Date.now() + this.opts.timeoutMs;
      const text = (await readBodyUpTo(err.response, undefined, deadline).catch(() => null)) ?? '';
      if (isNotFound(status, text)) return { kind: 'not_found' };
    }
    return { kind: 'error', error: status >= 500 ? 'http_5xx' : 'http_other' };
  }
}
