import type { FetchErrorKind, FetchResult } from './source.js';
import type { OwnedSet } from '../ring/ownership.js';
import type { Sample } from '../storage/format/documents.js';
import { SlotWalk } from './slots.js';
import { HandoverHold, type Late } from './handover.js';
import type { StoredCheck } from './stored.js';
import { upperBound } from '../shared/util.js';
import { PeriodicJob } from '../shared/services.js';
import type { Logger } from '../shared/log.js';

export interface SchedulerOptions {
  intervalMs: number;
  concurrency: number;
  /** how long a not-found pk is left alone before it is asked again */
  notFoundRecheckMs?: number;
  /**
   * A gained pk whose slot in the previous interval is less than this old is fetched for that
   * interval too: the last owner may have let it go before its slot (it recomputed the ring first,
   * or its clock is behind). Default min(interval, 5 s); a repeat is a harmless duplicate.
   */
  catchUpMs?: number;
  /**
   * Asks the store which pks have a point of an interval: catch-ups of pks a live member handed over
   * are held `settleMs`, then fetched only if that member did not store them. Without it, every
   * catch-up is fetched at once.
   */
  stored?: StoredCheck;
  settleMs?: number;
  now?: () => number;
  /** where a failed walk is reported (it is tried again 50 ms later) */
  log: Logger;
}

export interface Fetcher {
  fetch(pk: number, deadline: number, onError?: (kind: FetchErrorKind) => void): Promise<FetchResult>;
}

/** Figures of the last complete interval plus running totals; published in the member card. */
export interface SchedulerStats {
  owned: number;
  intervalMs: number;
  samplesLastInterval: number;
  onTimePct: number | null;
  latenessP50Ms: number | null;
  latenessP99Ms: number | null;
  missed: number;
  missedLastInterval: number;
  fetchErrors: Partial<Record<FetchErrorKind, number>>;
  notFound: number;
  inFlight: number;
  /** catch-ups of handed-over pks not fetched: their last owner had stored them */
  handoverStored: number;
}

const LATENESS_SAMPLE = 10_000;

function newFigures(): { stored: number; onTime: number; seen: number; lateness: number[]; missed: number } {
  return { stored: 0, onTime: 0, seen: 0, lateness: [], missed: 0 };
}

/**
 * Polls every owned pk once per interval (aligned to UTC) at the offset hash/2^32 of the interval,
 * so load is even and a pk keeps its cadence when another node takes it over. Owned pks are kept
 * sorted by hash, which is also the order of their due times: a cursor walks them. A sample is
 * stamped with the interval it was due in. Pks gained after their slot in the current interval
 * are fetched at once, and so are those whose slot in the previous interval passed less than
 * `catchUpMs` ago (a duplicate is harmless, a gap is not); lost pks stop at once, queued or not.
 * A sample is fetched at the latest before the pk's slot in the next interval: after a pause (SIGSTOP,
 * a long GC, the clock stepped forward) what is past that is dropped and counted as missed, as is
 * every owned pk of every interval skipped whole.
 */
export class Scheduler {
  private readonly walk: SlotWalk;
  /** due pks not yet dispatched: gained after their slot, or left over when an interval ended */
  private late: Late[] = [];
  /** next entry of `late` to dispatch (a head index: shifting would cost O(backlog) per request) */
  private lateHead = 0;
  private readonly notFoundUntil = new Map<number, number>();
  /** the walk: each run dispatches what is due and says when to look again */
  private readonly loop: PeriodicJob<number>;
  private stopped = false;
  private inFlight = 0;
  /** requests in flight per interval they are stamped with (a few intervals at most) */
  private readonly inFlightByInterval = new Map<number, number>();
  private readonly idle: Array<() => void> = [];
  private readonly now: () => number;
  private readonly catchUpMs: number;
  // figures of the interval in progress and of the last complete one
  private cur = newFigures();
  private last = newFigures();
  private missedTotal = 0;
  private notFoundTotal = 0;
  private readonly fetchErrors: Partial<Record<FetchErrorKind, number>> = {};
  private readonly handover: HandoverHold;

  constructor(
    private readonly fetcher: Fetcher,
    private readonly sink: (sample: Sample) => void,
    private readonly opts: SchedulerOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.catchUpMs = opts.catchUpMs ?? Math.min(opts.intervalMs, 5000);
    this.walk = new SlotWalk(opts.intervalMs);
    const release = (entries: Late[]): void => {
      this.queue(entries);
      this.loop.runNow();
    };
    this.handover = new HandoverHold(opts.stored, opts.settleMs ?? 0, release, (l) => this.nextSlot(l));
    const failure = 'polling walk failed; retrying';
    this.loop = new PeriodicJob(() => this.tick(), { log: opts.log, failure, everyMs: 50, next: (ms) => ms });
  }

  /**
   * Replaces the owned set; the caller passes what it gained so late slots are caught up, and which
   * of those had no live owner before (`orphaned`; all of them when not given): those are fetched
   * at once, the others once the store says their last owner did not store them.
   */
  setOwned(owned: OwnedSet, gained: Int32Array | number[] = [], orphaned?: Int32Array | number[]): void {
    const walk = this.walk;
    const now = this.now();
    // continue after the last pk dispatched in this interval; gained pks before it are caught up
    if (walk.interval >= 0 && gained.length > 0) walk.reach(walk.dueHash(now, walk.interval));
    walk.follow(owned);
    if (walk.interval >= 0 && gained.length > 0) {
      const catchUp = this.catchUps(owned, new Set(gained), now);
      // orphaned is a subset of gained: the same length is the same pks (a new cluster's million)
      if (orphaned === undefined || orphaned.length === gained.length) this.queue(catchUp);
      else {
        const orphans = new Set(orphaned);
        this.queue(catchUp.filter((l) => orphans.has(l.pk)));
        this.handover.hold(
          catchUp.filter((l) => !orphans.has(l.pk)),
          now,
        );
      }
    }
    this.loop.runNow();
  }

  /** Appends to the late queue one by one: a spread of a new cluster's million would overflow the stack. */
  private queue(entries: Late[]): void {
    for (const l of entries) this.late.push(l);
  }

  /** The gained pks' missed slots: in this interval, and in the previous one less than catchUpMs ago. */
  private catchUps(owned: OwnedSet, fresh: Set<number>, now: number): Late[] {
    const walk = this.walk;
    const out: Late[] = [];
    const previous = walk.interval - this.opts.intervalMs;
    const since = now - this.catchUpMs;
    if (this.catchUpMs > 0 && since < walk.interval) {
      const fromHash = Math.ceil(walk.dueHash(Math.max(previous, since), previous));
      for (let i = upperBound(owned.hashes, fromHash - 1); i < owned.pks.length; i++) {
        if (fresh.has(owned.pks[i])) out.push({ pk: owned.pks[i], hash: owned.hashes[i], at: previous, due: now });
      }
    }
    for (let i = 0; i < walk.cursor; i++) {
      if (fresh.has(owned.pks[i])) out.push({ pk: owned.pks[i], hash: owned.hashes[i], at: walk.interval, due: now });
    }
    return out;
  }

  /** Starts the walk; its first run before this returns. */
  start(): void {
    this.stopped = false;
    this.loop.start();
    this.loop.runNow();
  }

  /** Stops dispatching; resolves when every request in flight has finished and been handed on. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.handover.clear();
    await this.loop.stop();
    if (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Called by the writer when samples are stored: on time = stored before its interval ended. */
  recordStored(samples: Sample[], doneAt: number): void {
    for (const s of samples) {
      const bucket =
        s.at === this.walk.interval
          ? this.cur
          : s.at === this.walk.interval - this.opts.intervalMs
            ? this.last
            : undefined;
      if (!bucket) continue;
      bucket.stored++;
      const due = s.due ?? s.at;
      // on time: stored before the pk is due again
      if (doneAt < due + this.opts.intervalMs) bucket.onTime++;
      // a uniform sample of the interval's lateness (reservoir), for p50/p99
      bucket.seen++;
      if (bucket.lateness.length < LATENESS_SAMPLE) bucket.lateness.push(doneAt - due);
      else {
        const j = Math.floor(Math.random() * bucket.seen);
        if (j < LATENESS_SAMPLE) bucket.lateness[j] = doneAt - due;
      }
    }
  }

  stats(): SchedulerStats {
    const l = this.last;
    const sorted = [...l.lateness].sort((a, b) => a - b);
    const pick = (q: number): number | null =>
      sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
    return {
      owned: this.walk.owned.pks.length,
      intervalMs: this.opts.intervalMs,
      samplesLastInterval: l.stored,
      onTimePct: l.stored + l.missed > 0 ? Math.round((l.onTime / (l.stored + l.missed)) * 10000) / 100 : null,
      latenessP50Ms: pick(0.5),
      latenessP99Ms: pick(0.99),
      missed: this.missedTotal,
      missedLastInterval: l.missed,
      fetchErrors: { ...this.fetchErrors },
      notFound: this.notFoundTotal,
      inFlight: this.inFlight,
      handoverStored: this.handover.skipped,
    };
  }

  /** The oldest interval a request in flight is stamped with: its sample may still reach the store. */
  oldestInFlight(): number | null {
    let min: number | null = null;
    for (const at of this.inFlightByInterval.keys()) if (min === null || at < min) min = at;
    return min;
  }

  /** One run of the walk; returns how long to wait before the next. */
  private tick(): number {
    const now = this.pump();
    // next pk's due time, but look again at least every 50 ms (new interval, freed slots, held catch-ups)
    return Math.max(1, Math.min(50, this.walk.nextDue() - now, this.handover.nextCheck() - now));
  }

  /** Dispatches every due pk the concurrency limit allows; returns the time it looked. */
  private pump(): number {
    const walk = this.walk;
    const now = this.now();
    const start = walk.startOf(now);
    if (this.stopped) return now;
    if (start !== walk.interval) this.rollOver(start, now);
    this.handover.poll(now, (l) => this.owns(l));
    const { pks, hashes } = walk.owned;
    const dueUpTo = walk.dueHash(now, start);
    while (this.inFlight < this.opts.concurrency && this.lateHead < this.late.length) {
      const late = this.late[this.lateHead++];
      if (!this.owns(late)) continue; // lost while queued: its new owner polls it
      if (now >= this.nextSlot(late))
        this.countMissed(late.at); // a value fetched now would be stale
      else this.dispatch(late.pk, late.at, late.due);
    }
    if (this.lateHead > 1024 && this.lateHead * 2 > this.late.length) {
      this.late = this.late.slice(this.lateHead);
      this.lateHead = 0;
    }
    while (this.inFlight < this.opts.concurrency) {
      const i = walk.take(dueUpTo);
      if (i < 0) break;
      this.dispatch(pks[i], start, walk.slotTime(start, hashes[i]));
    }
    return now;
  }

  /**
   * A new interval: pks of the last one not dispatched yet go first, still stamped with it, unless
   * their slot in this one has passed (then, like anything queued from before, they are missed).
   * Intervals skipped whole (a pause, the clock stepped forward) are missed for every owned pk, but
   * for the last one's pks whose slot in this interval is still to come: those are fetched for it.
   */
  private rollOver(start: number, now: number): void {
    const walk = this.walk;
    if (walk.interval >= 0) {
      const I = this.opts.intervalMs;
      const { pks, hashes } = walk.owned;
      const waiting = this.late.slice(this.lateHead).filter((l) => this.owns(l));
      for (let i = walk.cursor; i < pks.length; i++) {
        waiting.push({ pk: pks[i], hash: hashes[i], at: walk.interval, due: walk.slotTime(walk.interval, hashes[i]) });
      }
      const kept = waiting.filter((l) => now < this.nextSlot(l));
      let missed = waiting.length - kept.length;
      const skipped = Math.max(0, Math.round((start - walk.interval) / I) - 1);
      if (skipped > 0) {
        const last = start - I;
        // pks whose slot in this interval has passed: their sample for `last` would be stale
        const passed = upperBound(hashes, walk.dueHash(now, start));
        missed += (skipped - 1) * pks.length + passed;
        for (let i = passed; i < pks.length; i++) {
          kept.push({ pk: pks[i], hash: hashes[i], at: last, due: walk.slotTime(last, hashes[i]) });
        }
      }
      // counted in the figures of the interval just ended
      this.cur.missed += missed;
      this.missedTotal += missed;
      this.late = kept;
      this.lateHead = 0;
      this.last = this.cur;
      this.cur = newFigures();
    }
    walk.restart(start);
  }

  /** The pk's slot in the interval after `at`: its sample for `at` is not fetched from then on. */
  private nextSlot(l: Late): number {
    return this.walk.slotTime(l.at + this.opts.intervalMs, l.hash);
  }

  /** Whether the pk is still owned (a binary search of the owned hashes). */
  private owns(l: Late): boolean {
    const { pks, hashes } = this.walk.owned;
    for (let i = upperBound(hashes, l.hash - 1); i < pks.length && hashes[i] === l.hash; i++) {
      if (pks[i] === l.pk) return true;
    }
    return false;
  }

  private dispatch(pk: number, intervalStart: number, due: number): void {
    const until = this.notFoundUntil.get(pk);
    if (until !== undefined) {
      if (this.now() < until) return;
      this.notFoundUntil.delete(pk);
    }
    this.inFlight++;
    this.inFlightByInterval.set(intervalStart, (this.inFlightByInterval.get(intervalStart) ?? 0) + 1);
    const deadline = intervalStart + this.opts.intervalMs;
    this.fetcher
      .fetch(pk, deadline, (kind) => {
        this.fetchErrors[kind] = (this.fetchErrors[kind] ?? 0) + 1;
      })
      .then(
        (r) => {
          if (r.kind === 'ok') {
            const i = r.influencer;
            this.sink({
              pk,
              at: intervalStart,
              due,
              username: i.username,
              followerCount: i.followerCount,
              followingCount: i.followingCount,
            });
          } else if (r.kind === 'not_found') {
            this.notFoundTotal++;
            this.notFoundUntil.set(pk, this.now() + (this.opts.notFoundRecheckMs ?? 3_600_000));
          } else {
            this.countMissed(intervalStart);
          }
        },
        () => this.countMissed(intervalStart),
      )
      .finally(() => {
        this.inFlight--;
        const left = this.inFlightByInterval.get(intervalStart)! - 1;
        if (left > 0) this.inFlightByInterval.set(intervalStart, left);
        else this.inFlightByInterval.delete(intervalStart);
        if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve();
        this.pump();
      });
  }

  private countMissed(intervalStart: number): void {
    this.missedTotal++;
    if (intervalStart === this.walk.interval) this.cur.missed++;
    else if (intervalStart === this.walk.interval - this.opts.intervalMs) this.last.missed++;
  }
}
