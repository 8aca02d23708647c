import type { Redis } from 'ioredis';
import type { Db } from 'mongodb';
import { insertOnce } from '../../shared/mongo-errors.js';
import type { ClusterLock } from '../../cluster/locks.js';
import type { Logger } from '../../ops/log.js';
import { PeriodicJob } from '../../shared/periodic.js';
import { everyMemberLogged } from '../../cluster/member-view.js';
import type { Totals } from '../state/totals.js';
import { redisIdentity, totalsTrusted } from '../state/totals-state.js';
import { raiseMark } from '../../lua/scripts.js';
import { clusterKeys, type ClusterKeys, INFLUENCER_FIELDS } from '../../shared/keys.js';
import {
  addPoints,
  decodeCheckpoint,
  decodeLog,
  decodeOpen,
  summarize,
  type BucketSummary,
  type PkTotals,
  type Point,
} from '../format/codec.js';
import { type StorageLayout } from '../format/layout.js';
import { SliceWriter } from '../write/slice-writer.js';
import type { StorageJobDeps } from './job-deps.js';
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
  private readonly redis: Redis;
  private readonly db: Db;
  private readonly totals: Totals;
  private readonly lock: ClusterLock;
  private readonly layout: StorageLayout;
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
    ({ layout: this.layout, cluster: this.cluster, log: this.log } = deps);
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
    // closing reads the open buffers: not while they may be stale or incomplete (a rebuild is due)
    if (!(await totalsTrusted(this.redis, this.cluster))) return 'idle';
    const period = await this.nextPeriod();
    const { bucketMs, intervalMs } = this.layout;
    const now = this.now();
    if (now < period + bucketMs + intervalMs + this.opts.graceMs) return 'idle';
    if (
      !(await everyMemberLogged(this.redis, this.cluster, period + bucketMs, now)) &&
      now < period + 2 * bucketMs + intervalMs + this.opts.graceMs
    )
      return 'waiting';
    if (!(await this.hasLog(period))) {
      await this.finish(period, 0);
      return 'closed';
    }
    await raiseMark(this.redis, this.keys.closing, period);
    if (!(await this.redis.exists(this.keys.reconciled(period)))) {
      const r = await this.lock.runExclusive(`reconcile:${period}`, async (signal) => {
        // another node may have closed it since this pass read the mark
        if (Number(await this.redis.get(this.keys.closed)) >= period) return;
        await this.reconcile(period, signal);
      });
      if (!r.ran) return 'busy';
    }
    let points = 0;
    for (const slice of shuffled(this.layout.slices)) {
      if (await this.redis.sismember(this.keys.closedSlices(period), String(slice))) continue;
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

  /**
   * Applies, in log order, every log document of the period that no node applied. Stops when the
   * lock is lost: another node reconciles then, and may close the slices before this one would
   * have applied a document it saw.
   */
  private async reconcile(period: number, signal: AbortSignal): Promise<void> {
    const started = performance.now();
    const log = this.db.collection<LogDoc>(collectionNames.log(period));
    let docs = 0;
    let applied = 0;
    for await (const doc of log.find({})) {
      if (signal.aborted) throw new Error("the reconcile's lock was lost; another node reconciles");
      docs++;
      const samples = decodeLog(period, doc.b.buffer).map((s) => ({
        pk: s.pk,
        at: s.at,
        followerCount: s.f,
        followingCount: s.g,
        username: s.username,
      }));
      const r = await this.totals.applyLog(String(doc._id), period, samples, 'reconcile', (pk) =>
        this.layout.slice(pk),
      );
      if (r.kind === 'applied') applied++;
    }
    await this.redis.set(this.keys.reconciled(period), '1', 'EX', MARK_TTL_S);
    if (applied > 0) {
      const ms = Math.round(performance.now() - started);
      this.log.info(
        { period: iso(period), docs, applied, ms },
        'log documents no node had applied were applied before the close',
      );
    }
  }

  /**
   * One slice of a period: its buckets, its checkpoint (the previous one plus the buckets), its
   * rollups at the end of a rollup period, then the open buffers deleted. Resolves to the points.
   */
  private async closeSlice(period: number, slice: number, signal: AbortSignal): Promise<number> {
    const { bucketMs } = this.layout;
    const pks = (await this.redis.smembers(this.keys.openPks(period, slice))).map(Number).sort((a, b) => a - b);
    const rollupEnd = period + bucketMs === this.layout.rollup(period) + this.layout.rollupMs;
    if (pks.length === 0) {
      // no points in this bucket: the checkpoint stays the previous one; the day's rollups still go out
      if (rollupEnd) await this.slices.rollups(period, slice, new Map());
      return 0;
    }
    // a rebuild wipes the buffers, an eviction removes some: if either happens while this slice
    // reads them, nothing is written
    const since = await this.redis.get(this.keys.since);
    const identity = await redisIdentity(this.redis);
    const totals = new Map((await this.previousCheckpoint(period, slice)).map((t) => [t.pk, t]));
    const summaries = new Map<number, BucketSummary>();
    let points = 0;
    for (let i = 0; i < pks.length; i += CHUNK) {
      if (signal.aborted) throw new Error("the slice's lock was lost; another node redoes it");
      const chunk = pks.slice(i, i + CHUNK);
      const pipeline = this.redis.pipeline();
      for (const pk of chunk)
        pipeline.getBuffer(this.keys.open(period, pk)).hget(this.keys.influencer(pk), INFLUENCER_FIELDS.username);
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
      if ((await this.redis.get(this.keys.since)) !== since || (await redisIdentity(this.redis)) !== identity) {
        throw new Error(
          'a totals rebuild began, or Redis evicted keys, while the slice was read; it is closed again later',
        );
      }
      await this.slices.buckets(period, lists);
    }
    await this.slices.checkpoint(period, slice, totals, summaries);
    if (rollupEnd) await this.slices.rollups(period, slice, summaries);
    await this.redis.hset(this.keys.checkpoints, String(slice), String(period));
    for (let i = 0; i < pks.length; i += CHUNK)
      await this.redis.unlink(...pks.slice(i, i + CHUNK).map((pk) => this.keys.open(period, pk)));
    await this.redis.unlink(this.keys.openPks(period, slice));
    return points;
  }

  /** The slice's totals as of its newest checkpoint before `period` (none for a new slice). */
  private async previousCheckpoint(period: number, slice: number): Promise<PkTotals[]> {
    const found = await newestCheckpoint(
      this.redis,
      this.db,
      this.layout,
      this.keys,
      slice,
      period - this.layout.bucketMs,
    );
    return found ? decodeCheckpoint(found.p + this.layout.bucketMs, found.b.buffer).totals : [];
  }

  /** The period is closed in every slice: move the marks (Redis, then MongoDB's durable copy), drop its sets. */
  private async finish(period: number, points: number): Promise<void> {
    await raiseMark(this.redis, this.keys.closing, period);
    await raiseMark(this.redis, this.keys.closed, period);
    const meta = this.db.collection<{ _id: string; p: number }>(collectionNames.meta);
    if (!(await insertOnce(meta, { _id: 'closed', p: period })))
      await meta.updateOne({ _id: 'closed', p: { $lt: period } }, { $set: { p: period } });
    // kept a little longer, so that a node's pass that read the old mark finds the period done
    for (const key of [this.keys.applied(period), this.keys.rebuilt(period), this.keys.reconciled(period)]) {
      await this.redis.pexpire(key, 2 * this.layout.bucketMs);
    }
    if (points > 0) this.log.info({ period: iso(period), points }, 'period closed');
  }
}

/** Defensive: the script stores an interval once per buffer; were it twice, the first record wins. */
function dedupeByTime(points: Point[]): Point[] {
  return points.filter((p, i) => i === 0 || p.at !== points[i - 1]!.at);
}

function shuffled(n: number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function iso(t: number): string {
  return new Date(t).toISOString();
}
