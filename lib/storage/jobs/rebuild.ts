import { randomBytes } from 'node:crypto';
import { PeriodicJob } from '../../shared/services.js';
import { everyMemberLogged } from '../../cluster/member-view.js';
import { answerPeriods, collections, collectionNames, type LogDoc } from '../format/documents.js';
import { masterIdentities, redisIdentity, sliceTrusted } from '../state/totals-state.js';
import { formatAnswer, logSamples, type Totals } from '../state/totals.js';
import { cannotApply, payloadOf, quarantine } from '../state/quarantine.js';
import { clusterKeys, SLICE_MARKS, sliceKeys, sliceTags, type SliceKeys } from '../../shared/keys.js';
import { scanKeys, unlinkKeys } from '../../shared/redis.js';
import { addPoint, decodeCheckpoint, decodeLog, emptyTotals, packTotals, type PkTotals } from '../format/codec.js';
import { type StorageLayout } from '../format/layout.js';
import type { StorageJobDeps } from './job-deps.js';
import { sleep } from '../../shared/util.js';
import { mergeSlice, raiseMark } from '../../lua/scripts.js';
import { newestCheckpoint, legacyTotals } from './checkpoints.js';

/** pks per merge call */
const MERGE_BATCH = 500;

export interface RebuilderOptions {
  /** how long after the cutoff every sample before it is logged (flush age, fetch deadlines, a margin) */
  graceMs: number;
  /** the clock samples are stamped with */
  now?: () => number;
}

/** What the rebuild read of the log: per period, the tokens of the documents it counted. */
type ReadLog = Map<number, Set<string>>;

/** What one check did: nothing needed, another node rebuilding, rebuilt, or the previous key layout still in use. */
export type RebuildOutcome = 'ready' | 'busy' | 'rebuilt' | 'previous';

/**
 * Restores the running totals of the slices Redis lost, or of the slices whose Redis is not the
 * server they were built on (a restart from an older snapshot, an eviction, a failover to a
 * replica), as a singleton job; the other slices go on as they are. First every key of those
 * slices is deleted (a rebuild never adds onto survivors), then a cutoff T a little in the future
 * splits their samples: the Lua script counts every sample from T on, and this job, once every live
 * member has logged its samples before T, adds up the points before T (per slice the newest
 * checkpoint, plus the log of every later period, repeats dropped in log order), merges them in
 * batches fenced by its token, and puts the points it read back in the open buffers (a refill: the
 * open hour reads whole again). A job whose node died is started again by another node with a new
 * cutoff: the slices are wiped again, so nothing is counted twice.
 */
export class TotalsRebuilder {
  private readonly now: () => number;
  private readonly job: PeriodicJob<RebuildOutcome>;
  private abort?: AbortController;

  constructor(
    private readonly d: StorageJobDeps & { totals: Totals },
    private readonly opts: RebuilderOptions,
  ) {
    this.now = opts.now ?? Date.now;
    const failure = 'totals rebuild check failed; retrying';
    this.job = new PeriodicJob(() => this.runOnce(), { log: d.log, failure, everyMs: 3000 });
  }

  /** Checks every 3 s and rebuilds when needed. */
  start(): void {
    this.job.start();
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    await this.job.stop();
  }

  private keys(slice: number): SliceKeys {
    return sliceKeys(this.d.cluster, this.d.layout.slices, slice);
  }

  /**
   * Resolves once every slice's running totals count new samples (`since` is set: a new cluster's
   * totals start at 0, or a rebuild has set its cutoff), or when `signal` aborts. A node polls only
   * after this: a sample logged before a new cluster's totals start would make the cluster look old
   * and trigger a whole rebuild.
   */
  async counting(signal: AbortSignal): Promise<void> {
    const started = this.now();
    let said = false;
    while (!signal.aborted) {
      try {
        if ((await this.slicesCounting()) === this.d.layout.slices) return;
      } catch {
        // Redis unreachable: the connection's own state log says so; ask again
      }
      if (!said && this.now() - started > 5000) {
        said = true;
        const why = 'another node is starting them, or MongoDB is unreachable';
        this.d.log.info(`waiting for the running totals to start before polling (${why})`);
      }
      await sleep(200, signal);
    }
  }

  private async slicesCounting(): Promise<number> {
    const since = await Promise.all(
      Array.from({ length: this.d.layout.slices }, (_, s) => this.d.redis.hget(this.keys(s).marks, SLICE_MARKS.since)),
    );
    return since.filter((v) => v !== null).length;
  }

  /** One check: nothing to do, another node is at it, or this node rebuilt. */
  async runOnce(): Promise<RebuildOutcome> {
    // nothing of this version's to rebuild while the previous version's nodes write theirs
    const { keyspace, lock } = this.d;
    if (keyspace && !(await keyspace.switchWhenDue(lock))) return 'previous';
    if ((await this.slicesDue()).length === 0) return 'ready';
    const outcome = await this.d.lock.runExclusive('rebuild-totals', (signal) => this.rebuild(signal));
    return outcome.ran ? outcome.result : 'busy';
  }

  /**
   * The slices to rebuild: totals gone, a rebuild whose node stopped, or built on a Redis that no
   * longer serves them as it did (sliceTrusted: restarted, failed over, evicted keys).
   */
  private async slicesDue(): Promise<number[]> {
    const { redis, layout, cluster } = this.d;
    const masters = await masterIdentities(redis);
    const due: number[] = [];
    for (let slice = 0; slice < layout.slices; slice++)
      if (!(await sliceTrusted(redis, cluster, layout.slices, slice, masters))) due.push(slice);
    return due;
  }

  private async rebuild(lockSignal: AbortSignal): Promise<'ready' | 'rebuilt'> {
    const { redis, log, layout } = this.d;
    this.abort = new AbortController();
    const signal = AbortSignal.any([lockSignal, this.abort.signal]);
    // another node may have rebuilt them between the check and the lock
    const due = await this.slicesDue();
    if (due.length === 0) return 'ready';
    const stale = await Promise.all(
      due.map(async (s) => (await redis.hget(this.keys(s).marks, SLICE_MARKS.since)) !== null),
    );
    const closed = Number((await redis.get(clusterKeys(this.d.cluster).closed)) ?? -Infinity);
    await this.wipe(new Set(due));
    if (!(await this.anythingStored())) {
      // a new cluster: nothing to add up; samples waiting for this are counted from 0 on
      await this.setMarks(due, { since: '0' }, closed);
      log.info({ slices: due.length }, 'running totals start empty (nothing stored yet)');
      return 'ready';
    }
    const owner = randomBytes(8).toString('hex');
    const T = (Math.floor(this.now() / layout.intervalMs) + 2) * layout.intervalMs;
    await this.setMarks(due, { since: String(T), rb: String(T), owner }, closed);
    const reason = stale.some(Boolean)
      ? 'Redis restarted (maybe from an older snapshot), failed over, or evicted keys (use maxmemory-policy noeviction)'
      : 'the totals are missing';
    const slices = due.length === layout.slices ? 'all' : due.join(',');
    log.warn({ cutoff: new Date(T).toISOString(), slices, reason }, 'rebuilding the running totals from MongoDB');
    await this.waitForLogs(T, signal);
    if (signal.aborted) throw new Error('totals rebuild interrupted; another node starts it again');
    const { totals, read } = await this.totalsBefore(T, new Set(due), signal);
    const merged = await this.merge(T, owner, due, totals, signal);
    await this.refill(read, new Set(due), signal);
    if (signal.aborted) throw new Error('totals rebuild interrupted; another node starts it again');
    for (const s of due) {
      const k = this.keys(s);
      if ((await redis.hget(k.marks, SLICE_MARKS.rebuildOwner)) !== owner)
        throw new Error('another totals rebuild took over');
      // the owner's token stays: it names the totals' build, so a close that read the slice before a wipe sees another
      await redis.hdel(k.marks, SLICE_MARKS.rebuildCutoff, SLICE_MARKS.rebuildLast);
    }
    log.info({ pks: merged, slices, cutoff: new Date(T).toISOString() }, 'running totals rebuilt');
    return 'rebuilt';
  }

  /** The marks of freshly wiped slices: the Redis they are built on, and the newest period closed as their closing mark. */
  private async setMarks(slices: number[], marks: Record<string, string>, closed: number): Promise<void> {
    for (const s of slices) {
      const k = this.keys(s);
      const identity = await redisIdentity(this.d.redis, k.marks);
      await this.d.redis.hset(k.marks, { ...marks, [SLICE_MARKS.builtOn]: identity });
      if (Number.isFinite(closed)) await raiseMark(this.d.redis, k.marks, closed, SLICE_MARKS.closing);
    }
  }

  /** Deletes every key of the slices, their marks first: applies stop (no `since`), so nothing is half-counted. */
  private async wipe(slices: Set<number>): Promise<void> {
    const { redis, cluster, layout } = this.d;
    for (const s of slices) await redis.del(this.keys(s).marks);
    const sliceOfTag = new Map(sliceTags(layout.slices).map((tag, s) => [tag, s]));
    for await (const batch of scanKeys(redis, `${cluster}:{*`)) {
      const doomed = batch.filter((key) => {
        const tag = /^[^{]*\{([^}]*)\}/.exec(key)?.[1];
        const slice = tag === undefined ? undefined : sliceOfTag.get(tag);
        return slice !== undefined && slices.has(slice);
      });
      await unlinkKeys(redis, doomed);
    }
  }

  private async anythingStored(): Promise<boolean> {
    const names = (await this.d.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    return names.some(
      (n) =>
        n.startsWith('log_') ||
        n === collectionNames.checkpoints ||
        n === collectionNames.legacyTimeline ||
        n === collectionNames.migrationBase,
    );
  }

  /** Until T plus the grace has passed and every live member has logged its samples before T. */
  private async waitForLogs(T: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      const wait = T + this.opts.graceMs - this.now();
      if (wait > 0) await sleep(Math.min(wait, 1000), signal);
      else if (await everyMemberLogged(this.d.redis, this.d.cluster, T)) return;
      else await sleep(250, signal);
      if (signal.aborted) return;
      // a member that stays behind a whole bucket does not hold the totals up any longer
      if (this.now() > T + this.opts.graceMs + this.d.layout.bucketMs) return;
    }
  }

  /** The totals of every sample before T merged into each slice's, in pk order, fenced by the owner's token. */
  private async merge(
    T: number,
    owner: string,
    slices: number[],
    totals: Map<number, PkTotals>,
    signal: AbortSignal,
  ): Promise<number> {
    const answers = await this.latestAnswers();
    const bySlice = new Map<number, PkTotals[]>(slices.map((s) => [s, []]));
    for (const t of totals.values()) bySlice.get(t.pk % this.d.layout.slices)?.push(t);
    let merged = 0;
    for (const [slice, list] of bySlice) {
      list.sort((a, b) => a.pk - b.pk);
      const k = this.keys(slice);
      for (let i = 0; i < list.length; i += MERGE_BATCH) {
        if (signal.aborted) return merged;
        const chunk = list.slice(i, i + MERGE_BATCH);
        const packed = Buffer.concat(
          chunk.map((t) => {
            const pk = Buffer.alloc(8);
            pk.writeDoubleBE(t.pk);
            return Buffer.concat([pk, packTotals({ ...t, pf: t.pat < 0 ? 0 : t.pf })]);
          }),
        );
        const extras: (string | number)[] = [];
        chunk.forEach((t, j) => {
          const flag = answers.get(t.pk);
          if (t.username || flag) extras.push(j + 1, t.username, flag ? formatAnswer(flag.suspicious, flag.at) : '');
        });
        const r = await mergeSlice(
          this.d.redis,
          [k.marks, k.totals, k.usernames, k.suspicious],
          [T, owner, packed, ...extras],
        );
        if (r === -1) throw new Error('another totals rebuild took over');
        merged += chunk.length;
      }
    }
    return merged;
  }

  /**
   * Per pk of the slices, the totals of its points before T: the newest checkpoint of its slice
   * (and the base the migration wrote for the previous layout), plus every later logged sample
   * before T. Also says which log documents it read, per period.
   */
  private async totalsBefore(
    T: number,
    slices: Set<number>,
    signal: AbortSignal,
  ): Promise<{ totals: Map<number, PkTotals>; read: ReadLog }> {
    const { redis, db, layout } = this.d;
    const totals = new Map<number, PkTotals>();
    const covered = new Array<number>(layout.slices).fill(-Infinity);
    for (const slice of slices) {
      // a checkpoint of period P holds the points before P + B: those wholly before T
      const k = this.keys(slice);
      const doc = await newestCheckpoint(redis, db, layout, k, slice, layout.period(T) - layout.bucketMs);
      if (!doc) continue;
      covered[slice] = doc.p;
      for (const t of decodeCheckpoint(doc.p + layout.bucketMs, doc.b.buffer).totals) totals.set(t.pk, t);
      await raiseMark(redis, k.marks, doc.p, SLICE_MARKS.checkpoint);
    }
    for (const base of await legacyTotals(db, layout, this.d.log)) {
      if (!slices.has(base.pk % layout.slices)) continue;
      const t = totals.get(base.pk);
      totals.set(base.pk, t ? mergeOlder(base, t) : base);
    }
    const read: ReadLog = new Map();
    const starts = [...slices].map((s) =>
      covered[s] === -Infinity ? layout.firstPeriod : covered[s]! + layout.bucketMs,
    );
    for (let period = Math.min(...starts); period < T && !signal.aborted; period += layout.bucketMs) {
      const seen = new IntervalSet(period, layout);
      const tokens = new Set<string>();
      for await (const doc of db.collection<LogDoc>(collectionNames.log(period)).find({})) {
        const samples = await this.readable(period, doc, () => decodeLog(period, payloadOf(doc)));
        if (samples === null) continue;
        tokens.add(String(doc._id));
        for (const s of samples) {
          const slice = s.pk % layout.slices;
          if (s.at >= T || !slices.has(slice) || period <= covered[slice]! || !seen.add(s.pk, s.at)) continue;
          let t = totals.get(s.pk);
          if (!t) totals.set(s.pk, (t = emptyTotals(s.pk)));
          if (s.username) t.username = s.username;
          addPoint(t, s);
        }
      }
      if (tokens.size > 0) read.set(period, tokens);
    }
    return { totals, read };
  }

  /**
   * The documents the rebuild read, applied again: the rebuilt slices' parts as a refill (into the
   * open buffers, counting only samples at or after the cutoff: the merge counted the rest), the
   * other slices' parts as a reconcile where the document was not yet applied to every slice.
   * Periods the slice's checkpoint holds are left out (their points are in buckets already).
   */
  private async refill(read: ReadLog, slices: Set<number>, signal: AbortSignal): Promise<void> {
    const { db, redis } = this.d;
    const writer = this.d.totals;
    const checkpoint = new Map<number, number>();
    for (const s of slices)
      checkpoint.set(s, Number((await redis.hget(this.keys(s).marks, SLICE_MARKS.checkpoint)) ?? -Infinity));
    for (const [period, tokens] of read) {
      const applied = await writer.appliedTokens(period);
      for await (const doc of db.collection<LogDoc>(collectionNames.log(period)).find({})) {
        if (signal.aborted) return;
        const token = String(doc._id);
        if (!tokens.has(token)) continue;
        const outcomes = await this.readable(period, doc, () =>
          Promise.all(
            [...writer.bySlice(logSamples(period, payloadOf(doc)))].map(([slice, list]) => {
              if (slices.has(slice)) {
                if (period <= checkpoint.get(slice)!) return null;
                return writer.applySlice(period, slice, list, 'refill');
              }
              return applied.has(token) ? null : writer.applySlice(period, slice, list, 'reconcile');
            }),
          ),
        );
        if (outcomes === null) continue;
        // late: a slice whose checkpoint holds the period takes nothing more of it
        if (outcomes.every((o) => o === null || o.kind === 'applied' || o.kind === 'late'))
          await writer.markApplied(period, token);
      }
    }
  }

  /** `use` of a log document, or null when the document cannot be applied: it is quarantined, the rebuild goes on. */
  private async readable<R>(period: number, doc: LogDoc, use: () => R | Promise<R>): Promise<R | null> {
    try {
      return await use();
    } catch (err) {
      const reason = cannotApply(err);
      if (reason === null) throw err;
      await quarantine(this.d.redis, this.d.db, this.d.cluster, period, doc, reason, this.d.log);
      return null;
    }
  }

  /**
   * Each pk's latest daily suspicious answer: from the two newest check periods (a pk is checked
   * once a period), and the collection an older version kept them all in.
   */
  private async latestAnswers(): Promise<Map<number, { suspicious: boolean; at: number }>> {
    const { answers, legacyAnswers } = collections(this.d.db);
    const sources = [legacyAnswers, ...(await answerPeriods(this.d.db)).slice(0, 2).map(answers)];
    const out = new Map<number, { suspicious: boolean; at: number }>();
    for (const source of sources) {
      for await (const a of source.find({}, { projection: { pk: 1, at: 1, suspicious: 1 } })) {
        const at = a.at.getTime();
        const cur = out.get(a.pk);
        if (!cur || at > cur.at) out.set(a.pk, { suspicious: a.suspicious, at });
      }
    }
    return out;
  }
}

/** Which (pk, interval) of one period were seen: a slot bitmap per pk (8 bytes for an hour of minutes). */
class IntervalSet {
  private readonly bits = new Map<number, Uint8Array>();
  private readonly offGrid = new Set<string>();
  private readonly slots: number;

  constructor(
    private readonly period: number,
    private readonly layout: StorageLayout,
  ) {
    this.slots = layout.bucketMs / layout.intervalMs;
  }

  /** Adds; false if it was there. */
  add(pk: number, at: number): boolean {
    const slot = (at - this.period) / this.layout.intervalMs;
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) {
      const key = `${pk}:${at}`;
      if (this.offGrid.has(key)) return false;
      this.offGrid.add(key);
      return true;
    }
    let b = this.bits.get(pk);
    if (!b) this.bits.set(pk, (b = new Uint8Array(Math.ceil(this.slots / 8))));
    const mask = 1 << (slot & 7);
    if (b[slot >> 3]! & mask) return false;
    b[slot >> 3]! |= mask;
    return true;
  }
}

/** Totals of older points merged under newer ones: counts add, latest and previous come from the newer. */
export function mergeOlder(older: PkTotals, newer: PkTotals): PkTotals {
  const out = {
    ...newer,
    n: older.n + newer.n,
    sum: older.sum + newer.sum,
    min: Math.min(older.min, newer.min),
    max: Math.max(older.max, newer.max),
  };
  if (newer.pat < 0 && older.at < newer.at) {
    out.pat = older.at;
    out.pf = older.f;
  }
  if (!out.username) out.username = older.username;
  return out;
}
