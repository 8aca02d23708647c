import type { Db } from 'mongodb';
import { insertOnce } from '../../shared/mongo-errors.js';
import type { ClusterLock } from '../../cluster/locks.js';
import type { Logger } from '../../shared/log.js';
import { PeriodicJob } from '../../shared/periodic.js';
import { everyMemberLogged } from '../../cluster/member-view.js';
import { logSamples, type Totals } from '../state/totals.js';
import { masterIdentities, redisIdentity, sliceTrusted } from '../state/totals-state.js';
import type { RedisClient } from '../../shared/redis.js';
import { shuffled } from '../../shared/util.js';
import { raiseMark } from '../../lua/scripts.js';
import { clusterKeys, SLICE_MARKS, sliceKeys, type ClusterKeys, type SliceKeys } from '../../shared/keys.js';
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
/** marks of a closed period kept this long, for a node that looks late */
const MARK_TTL_S = 86_400;

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
  private readonly job: PeriodicJob;
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
    this.job = new PeriodicJob(() => this.closeDue(), this.log, 'closing a period failed; retrying');
  }

  start(everyMs = Math.min(5000, Math.max(200, this.layout.bucketMs / 10))): void {
    this.stopped = false;
    this.job.start(everyMs);
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
    if (!(await this.hasLog(period))) {
      await this.finish(period, 0);
      return 'closed';
    }
    await this.raiseClosing(period);
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
        await this.redis.multi().sadd(closed, String(slice)).expire(closed, MARK_TTL_S).exec();
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
      const samples = logSamples(period, doc.b.buffer);
      const outcomes = await Promise.all(
        [...this.totals.bySlice(samples)].map(([slice, list]) =>
          this.totals.applySlice(period, slice, list, 'reconcile'),
        ),
      );
      if (outcomes.some((o) => o.kind === 'rebuild' || o.kind === 'rebuilding')) {
        waiting = true;
        continue;
      }
      await this.totals.markApplied(period, token);
      if (outcomes.some((o) => o.kind === 'applied' && o.stored > 0)) applied++;
    }
    if (waiting) return false;
    await this.redis.set(this.keys.reconciled(period), '1', 'EX', MARK_TTL_S);
    if (applied > 0) {
      const ms = Math.round(performance.now() - started);
      this.log.info(
        { period: iso(period), docs, applied, ms },
        'log documents with samples no node had applied were applied before the close',
      );
    }
    return true;
  }

  /**
   * One slice of a period: its buckets, its checkpoint (the previous one plus the buckets), its
   * rollups at the end of a rollup period, then the open buffers deleted. Resolves to the points.
   */
  private async closeSlice(period: number, slice: number, signal: AbortSignal): Promise<number> {
    const { bucketMs } = this.layout;
    const k = this.sliceKeys(slice);
    const pks = (await this.redis.smembers(k.openPks(period))).map(Number).sort((a, b) => a - b);
    const rollupEnd = period + bucketMs === this.layout.rollup(period) + this.layout.rollupMs;
    if (pks.length === 0) {
      // no points in this bucket: the checkpoint stays the previous one; the day's rollups still go out
      if (rollupEnd) await this.slices.rollups(period, slice, new Map());
      return 0;
    }
    // a rebuild wipes the buffers, an eviction removes some: if either happens while this slice
    // reads them, nothing is written
    const since = await this.redis.hget(k.marks, SLICE_MARKS.since);
    const identity = await redisIdentity(this.redis, k.marks);
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
      const now = [await this.redis.hget(k.marks, SLICE_MARKS.since), await redisIdentity(this.redis, k.marks)];
      if (now[0] !== since || now[1] !== identity) {
        throw new Error(
          'a totals rebuild began, or Redis evicted keys, while the slice was read; it is closed again later',
        );
      }
      await this.slices.buckets(period, lists);
    }
    await this.slices.checkpoint(period, slice, totals, summaries);
    if (rollupEnd) await this.slices.rollups(period, slice, summaries);
    await raiseMark(this.redis, k.marks, period, SLICE_MARKS.checkpoint);
    for (let i = 0; i < pks.length; i += CHUNK)
      await this.redis.unlink(...pks.slice(i, i + CHUNK).map((pk) => k.open(period, pk)));
    await this.redis.unlink(k.openPks(period));
    return points;
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
    for (const key of [this.keys.applied(period), this.keys.reconciled(period)])
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
