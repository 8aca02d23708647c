import type { Db } from 'mongodb';
import { insertOnce } from '../../shared/mongo-errors.js';
import type { ClusterLock } from '../../cluster/locks.js';
import type { Logger } from '../../shared/log.js';
import { PeriodicJob } from '../../shared/services.js';
import { everyMemberLogged } from '../../cluster/member-view.js';
import { logSamples, type ApplyOutcome, type Totals } from '../state/totals.js';
import { cannotApply, payloadOf, quarantine } from '../state/quarantine.js';
import { masterIdentities, redisIdentity, sliceTrusted } from '../state/totals-state.js';
import type { RedisClient } from '../../shared/redis.js';
import { shuffled } from '../../shared/util.js';
import { raiseMark } from '../../lua/scripts.js';
import {
  clusterKeys,
  PERIOD_KEYS_TTL_MS,
  SLICE_MARKS,
  sliceKeys,
  type ClusterKeys,
  type SliceKeys,
} from '../../shared/keys.js';
import {
  addPoints,
  decodeCheckpoint,
  decodeOpen,
  summarize,
  type BucketSummary,
  type PkTotals,
  type Point,
} from '../format/codec.js';
import { type StorageLayout } from '../format/layout.js';
import { SliceWriter } from '../write/slice-writer.js';
import type { StorageJobDeps } from './job-deps.js';
import type { Keyspace } from '../state/keyspace.js';
import { newestCheckpoint } from './checkpoints.js';
import { type LogDoc, collectionNames } from '../format/documents.js';

/** pks read from Redis per round trip */
const CHUNK = 1000;

/**
 * How long after the interval that follows a time T every sample before T is in the log: a pk's
 * last interval is dispatched at the latest at its slot in the next one, its one attempt then ends
 * within the request timeout (earlier attempts start before the deadline), and the sample is
 * flushed within the flush age; 5 s of margin. The closer's and the rebuild's grace.
 */
export function closeGraceMs(c: { flushMaxAgeMs: number; requestTimeoutMs: number }): number {
  return c.requestTimeoutMs + c.flushMaxAgeMs + 5000;
}

export interface CloserOptions {
  /** how long after a period's end every sample of it is logged (flush age, fetch deadlines, a margin) */
  graceMs: number;
  now?: () => number;
}

/** What one pass did. */
export type CloseOutcome = 'idle' | 'waiting' | 'busy' | 'closed';

/**
 * Closes periods, oldest first (DESIGN.md beside this file): once every sample of period P is in
 * the log, the closing mark moves to P (the Lua script refuses later samples of P as late), one
 * node reconciles P's log with the open buffers, and the slices are closed by whichever nodes take
 * their locks: buckets, checkpoint and, at the end of a rollup period, rollups, all inserts of the
 * same documents if repeated; the open buffers are deleted last. Every node runs one.
 */
export class PeriodCloser {
  private readonly redis: RedisClient;
  private readonly db: Db;
  private readonly totals: Totals;
  private readonly lock: ClusterLock;
  private readonly layout: StorageLayout;
  private readonly keyspace?: Keyspace;
  private readonly cluster: string;
  private readonly log: Logger;
  private readonly keys: ClusterKeys;
  private readonly now: () => number;
  private readonly slices: SliceWriter;
  private readonly job: PeriodicJob<CloseOutcome>;
  private stopped = false;

  constructor(
    deps: StorageJobDeps & { totals: Totals },
    private readonly opts: CloserOptions,
  ) {
    ({ redis: this.redis, db: this.db, totals: this.totals, lock: this.lock } = deps);
    ({ layout: this.layout, cluster: this.cluster, log: this.log, keyspace: this.keyspace } = deps);
    this.keys = clusterKeys(this.cluster);
    this.now = opts.now ?? Date.now;
    this.slices = new SliceWriter(this.db, this.layout);
    const everyMs = Math.min(5000, Math.max(200, this.layout.bucketMs / 10));
    const failure = 'closing a period failed; retrying';
    this.job = new PeriodicJob(() => this.closeDue(), { log: this.log, failure, everyMs });
  }

  start(): void {
    this.stopped = false;
    this.job.start();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.job.stop();
  }

  /** Closes every period that is due, oldest first; stops at the first that is not. */
  async closeDue(): Promise<CloseOutcome> {
    let outcome: CloseOutcome = 'idle';
    while (!this.stopped) {
      const step = await this.runOnce();
      if (step !== 'closed') return outcome === 'closed' && step === 'idle' ? 'closed' : step;
      outcome = 'closed';
    }
    return outcome;
  }

  /** One step on the oldest period not closed: nothing due, waiting for samples, another node at it, or closed. */
  async runOnce(): Promise<CloseOutcome> {
    // the previous version's nodes close the periods until the keyspace switches
    if (this.keyspace && !this.keyspace.current) return 'idle';
    const period = await this.nextPeriod();
    const { bucketMs, intervalMs } = this.layout;
    const now = this.now();
    if (now < period + bucketMs + intervalMs + this.opts.graceMs) return 'idle';
    if (
      !(await everyMemberLogged(this.redis, this.cluster, period + bucketMs)) &&
      now < period + 2 * bucketMs + intervalMs + this.opts.graceMs
    )
      return 'waiting';
    if (await this.keysMayHaveExpired(period, now)) return 'waiting';
    // first: a sample applied after the check for a log would leave an open buffer no close reaches
    await this.raiseClosing(period);
    if (!(await this.hasLog(period))) {
      await this.finish(period, 0);
      return 'closed';
    }
    if (!(await this.redis.exists(this.keys.reconciled(period)))) {
      const r = await this.lock.runExclusive(`reconcile:${period}`, async (signal) => {
        // another node may have closed it since this pass read the mark
        if (Number(await this.redis.get(this.keys.closed)) >= period) return true;
        return this.reconcile(period, signal);
      });
      if (!r.ran) return 'busy';
      // a slice whose totals are gone until a rebuild sets their cutoff: its documents wait
      if (!r.result) return 'idle';
    }
    let points = 0;
    const masters = await masterIdentities(this.redis);
    for (const slice of shuffled(this.layout.slices)) {
      if (await this.redis.sismember(this.keys.closedSlices(period), String(slice))) continue;
      // closing reads the open buffers: not while they may be stale or incomplete (a rebuild is due)
      if (!(await sliceTrusted(this.redis, this.cluster, this.layout.slices, slice, masters))) continue;
      const r = await this.lock.runExclusive(`close:${period}:${slice}`, async (signal) => {
        // another node may have closed it between the check and the lock
        if (await this.redis.sismember(this.keys.closedSlices(period), String(slice))) return 0;
        const n = await this.closeSlice(period, slice, signal);
        const closed = this.keys.closedSlices(period);
        await this.redis.multi().sadd(closed, String(slice)).pexpire(closed, PERIOD_KEYS_TTL_MS).exec();
        return n;
      });
      if (r.ran) points += r.result;
    }
    if ((await this.redis.scard(this.keys.closedSlices(period))) < this.layout.slices) return 'busy';
    await this.finish(period, points);
    return 'closed';
  }

  /** The period after the newest closed one: Redis's mark, else MongoDB's, else the layout's first. */
  private async nextPeriod(): Promise<number> {
    const mark = await this.redis.get(this.keys.closed);
    if (mark !== null) return Number(mark) + this.layout.bucketMs;
    const stored = await this.db
      .collection<{ _id: string; p: number }>(collectionNames.meta)
      .findOne({ _id: 'closed' });
    const period = stored ? stored.p + this.layout.bucketMs : this.layout.firstPeriod;
    await raiseMark(this.redis, this.keys.closed, period - this.layout.bucketMs);
    return period;
  }

  /**
   * Whether a key of the period may have expired (PERIOD_KEYS_TTL_MS after it was made: at its
   * period's start, or at the slice's rebuild): a cluster stopped for days, or a close stuck that
   * long. Its reconcile would then count again what the lost buffers held, so those slices are
   * rebuilt from MongoDB first (their `since` removed: the rebuild job takes them), which makes
   * every key of theirs anew.
   */
  private async keysMayHaveExpired(period: number, now: number): Promise<boolean> {
    const safe = PERIOD_KEYS_TTL_MS / 2;
    if (now <= period + safe) return false;
    const stale: number[] = [];
    for (let slice = 0; slice < this.layout.slices; slice++) {
      const since = await this.redis.hget(this.sliceKeys(slice).marks, SLICE_MARKS.since);
      if (since !== null && now > Math.max(period, Number(since)) + safe) stale.push(slice);
    }
    if (stale.length === 0) return false;
    for (const slice of stale) await this.redis.hdel(this.sliceKeys(slice).marks, SLICE_MARKS.since);
    this.log.warn(
      { period: iso(period), slices: stale.length },
      'a period not closed for days: its Redis keys may have expired, so its slices are rebuilt from MongoDB before it closes',
    );
    return true;
  }

  private async hasLog(period: number): Promise<boolean> {
    const found = await this.db.listCollections({ name: collectionNames.log(period) }, { nameOnly: true }).toArray();
    return found.length > 0;
  }

  /** Each slice's closing mark moves to `period`: from now on the apply step refuses its samples as late. */
  private async raiseClosing(period: number): Promise<void> {
    await Promise.all(
      Array.from({ length: this.layout.slices }, (_, slice) =>
        raiseMark(this.redis, this.sliceKeys(slice).marks, period, SLICE_MARKS.closing),
      ),
    );
  }

  private sliceKeys(slice: number): SliceKeys {
    return sliceKeys(this.cluster, this.layout.slices, slice);
  }

  /**
   * Applies, in log order, every log document of the period that no node applied, each slice's part
   * to its slice. Stops when the lock is lost: another node reconciles then, and may close the
   * slices before this one would have applied a document it saw. Resolves false (the period is not
   * marked reconciled) when a slice's totals were gone: it is reconciled again once they are rebuilt.
   */
  private async reconcile(period: number, signal: AbortSignal): Promise<boolean> {
    const started = performance.now();
    const log = this.db.collection<LogDoc>(collectionNames.log(period));
    const done = await this.totals.appliedTokens(period);
    let docs = 0;
    let applied = 0;
    let waiting = false;
    for await (const doc of log.find({})) {
      if (signal.aborted) throw new Error("the reconcile's lock was lost; another node reconciles");
      docs++;
      const token = String(doc._id);
      if (done.has(token)) continue;
      const outcomes = await this.reconcileDoc(period, doc);
      if (outcomes === null) continue;
      if (outcomes.some((o) => o.kind === 'rebuild' || o.kind === 'rebuilding')) {
        waiting = true;
        continue;
      }
      await this.totals.markApplied(period, token);
      if (outcomes.some((o) => o.kind === 'applied' && o.stored > 0)) applied++;
    }
    if (waiting) return false;
    await this.redis.set(this.keys.reconciled(period), '1', 'PX', PERIOD_KEYS_TTL_MS);
    if (applied > 0) {
      const ms = Math.round(performance.now() - started);
      this.log.info(
        { period: iso(period), docs, applied, ms },
        'log documents with samples no node had applied were applied before the close',
      );
    }
    return true;
  }

  /** Applies every slice's part of one log document; null (and it is quarantined) when it cannot be applied. */
  private async reconcileDoc(period: number, doc: LogDoc): Promise<ApplyOutcome[] | null> {
    try {
      const samples = logSamples(period, payloadOf(doc));
      return await Promise.all(
        [...this.totals.bySlice(samples)].map(([slice, list]) =>
          this.totals.applySlice(period, slice, list, 'reconcile'),
        ),
      );
    } catch (err) {
      const reason = cannotApply(err);
      if (reason === null) throw err;
      await quarantine(this.redis, this.db, this.cluster, period, doc, reason, this.log);
      return null;
    }
  }

  /**
   * One slice of a period: its buckets, its checkpoint (the previous one plus the buckets), its
   * rollups at the end of a rollup period, then the open buffers deleted. Resolves to the points.
   */
  private async closeSlice(period: number, slice: number, signal: AbortSignal): Promise<number> {
    const { bucketMs } = this.layout;
    const k = this.sliceKeys(slice);
    // a rebuild wipes the buffers, an eviction removes some: if either happens while this slice
    // reads them (an empty set included), nothing is written
    const built = await this.builtFrom(k);
    const pks = (await this.redis.smembers(k.openPks(period))).map(Number).sort((a, b) => a - b);
    const rollupEnd = period + bucketMs === this.layout.rollup(period) + this.layout.rollupMs;
    if (pks.length === 0) {
      await this.unchangedSince(k, built);
      // no points in this bucket: the checkpoint stays the previous one; the day's rollups still go out
      if (rollupEnd) await this.slices.rollups(period, slice, new Map());
      return 0;
    }
    const totals = new Map((await this.previousCheckpoint(period, slice)).map((t) => [t.pk, t]));
    const summaries = new Map<number, BucketSummary>();
    let points = 0;
    for (let i = 0; i < pks.length; i += CHUNK) {
      if (signal.aborted) throw new Error("the slice's lock was lost; another node redoes it");
      const chunk = pks.slice(i, i + CHUNK);
      const pipeline = this.redis.pipeline();
      for (const pk of chunk) pipeline.getBuffer(k.open(period, pk)).hget(k.usernames, String(pk));
      const replies = (await pipeline.exec()) ?? [];
      const lists: Array<[number, Point[]]> = [];
      chunk.forEach((pk, k) => {
        const [err, raw] = replies[2 * k] ?? [null, null];
        if (err) throw err;
        if (!raw) return;
        const all = decodeOpen(period, raw as Buffer);
        const list: Point[] = dedupeByTime(all);
        if (list.length !== all.length) {
          const counts = { records: all.length, points: list.length };
          this.log.error(
            { pk, period: iso(period), ...counts },
            'an open buffer held an interval twice; the first is kept',
          );
        }
        if (list.length === 0) return;
        points += list.length;
        lists.push([pk, list]);
        const username = (replies[2 * k + 1]?.[1] as string | null) ?? '';
        totals.set(pk, addPoints(totals.get(pk), pk, username, list));
        summaries.set(pk, summarize(list));
      });
      await this.unchangedSince(k, built);
      await this.slices.buckets(period, lists);
    }
    await this.slices.checkpoint(period, slice, totals, summaries);
    await this.afterCheckpoint(k, built);
    if (rollupEnd) await this.slices.rollups(period, slice, summaries);
    await raiseMark(this.redis, k.marks, period, SLICE_MARKS.checkpoint);
    for (let i = 0; i < pks.length; i += CHUNK)
      await this.redis.unlink(...pks.slice(i, i + CHUNK).map((pk) => k.open(period, pk)));
    await this.redis.unlink(k.openPks(period));
    return points;
  }

  /** What the slice's keys were built from: its cutoff, the rebuild that set it, the Redis holding them. */
  private async builtFrom(k: SliceKeys): Promise<string> {
    const [since, rebuilding, owner] = await this.redis.hmget(
      k.marks,
      SLICE_MARKS.since,
      SLICE_MARKS.rebuildCutoff,
      SLICE_MARKS.rebuildOwner,
    );
    if (since === null || rebuilding !== null) throw new Error('the slice is being rebuilt; it is closed later');
    return `${since}:${owner ?? ''}:${await redisIdentity(this.redis, k.marks)}`;
  }

  /** Throws if the slice was wiped, rebuilt or evicted from since `built` was read. */
  private async unchangedSince(k: SliceKeys, built: string): Promise<void> {
    const now = await this.builtFrom(k).catch(() => '');
    if (now !== built)
      throw new Error(
        'a totals rebuild began, or Redis evicted keys, while the slice was read; it is closed again later',
      );
  }

  /**
   * After the checkpoint is written: a rebuild that wiped the slice since `built` was read may have
   * looked for this checkpoint before it existed and counted the period from the log, with the
   * samples this close left out as late, which its buckets lack. Its `since` is removed then, so the
   * slice is rebuilt again, from this checkpoint. Throws, as unchangedSince does, if anything changed.
   */
  private async afterCheckpoint(k: SliceKeys, built: string): Promise<void> {
    const now = await this.builtFrom(k).catch(() => null);
    if (now === built) return;
    // `built` is `<since>:<rebuild owner>:<Redis identity>`; a new cutoff or owner is a rebuild
    const cutoffAndOwner = (b: string): string => b.split(':', 2).join(':');
    if (now === null || cutoffAndOwner(now) !== cutoffAndOwner(built))
      await this.redis.hdel(k.marks, SLICE_MARKS.since);
    throw new Error('a totals rebuild began while the slice was closed; it is rebuilt again from its checkpoint');
  }

  /** The slice's totals as of its newest checkpoint before `period` (none for a new slice). */
  private async previousCheckpoint(period: number, slice: number): Promise<PkTotals[]> {
    const found = await newestCheckpoint(
      this.redis,
      this.db,
      this.layout,
      this.sliceKeys(slice),
      slice,
      period - this.layout.bucketMs,
    );
    return found ? decodeCheckpoint(found.p + this.layout.bucketMs, found.b.buffer).totals : [];
  }

  /** The period is closed in every slice: move the marks (Redis, then MongoDB's durable copy), drop its sets. */
  private async finish(period: number, points: number): Promise<void> {
    await this.raiseClosing(period);
    await raiseMark(this.redis, this.keys.closed, period);
    const meta = this.db.collection<{ _id: string; p: number }>(collectionNames.meta);
    if (!(await insertOnce(meta, { _id: 'closed', p: period })))
      await meta.updateOne({ _id: 'closed', p: { $lt: period } }, { $set: { p: period } });
    // kept a little longer, so that a node's pass that read the old mark finds the period done
    for (const key of [this.keys.applied(period), this.keys.reconciled(period), this.keys.closedSlices(period)])
      await this.redis.pexpire(key, 2 * this.layout.bucketMs);
    if (points > 0) this.log.info({ period: iso(period), points }, 'period closed');
  }
}

/** Defensive: the script stores an interval once per buffer; were it twice, the first record wins. */
function dedupeByTime(points: Point[]): Point[] {
  return points.filter((p, i) => i === 0 || p.at !== points[i - 1]!.at);
}

function iso(t: number): string {
  return new Date(t).toISOString();
}
