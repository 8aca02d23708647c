import { randomBytes } from 'node:crypto';
import { PeriodicJob } from '../../shared/periodic.js';
import { everyMemberLogged } from '../../cluster/member-view.js';
import { answerPeriods, collections, collectionNames, type LogDoc } from '../format/documents.js';
import { redisIdentity, totalsState } from '../state/totals-state.js';
import { clusterKeys, type ClusterKeys } from '../../shared/keys.js';
import { addPoint, decodeCheckpoint, decodeLog, emptyTotals, type PkTotals } from '../format/codec.js';
import { type StorageLayout } from '../format/layout.js';
import type { StorageJobDeps } from './job-deps.js';
import { sleep } from '../../shared/util.js';
import { mergeTotals } from '../../lua/scripts.js';
import { newestCheckpoint, legacyTotals } from './checkpoints.js';

const MERGE_BATCH = 500;

/** Keys of the totals and open buffers (not membership, locks or the rebuild's own progress). */
function isDataKey(keys: ClusterKeys, cluster: string, key: string): boolean {
  const rest = key.slice(cluster.length + 1);
  const single = [
    keys.rank,
    keys.growth,
    keys.stats,
    keys.since,
    keys.closing,
    keys.closed,
    keys.checkpoints,
    keys.builtOn,
  ];
  if (single.includes(key)) return true;
  return /^(inf|open|pks|applied|rebuilt|closed|reconciled):/.test(rest);
}

export interface RebuilderOptions {
  /** how long after the cutoff every sample before it is logged (flush age, fetch deadlines, a margin) */
  graceMs: number;
  /** the clock samples are stamped with */
  now?: () => number;
}

/**
 * Restores the running totals, rank and growth after Redis lost them, or when Redis is not the
 * server they were built on (a restart from an older snapshot keeps stale keys), as a singleton
 * job. First every data key of the cluster is deleted (a rebuild never adds onto survivors), then a
 * cutoff T a little in the future splits the samples: the Lua script counts every sample from T on,
 * and this job, once every live member has logged its samples before T, adds up the points before
 * T (per slice the newest checkpoint, plus the log of every later period, repeats dropped in log
 * order) and merges them in batches fenced by its token. A job whose node died is resumed by
 * another node after the last pk merged. The open buffers of unclosed periods are refilled by
 * their reconcile when they close.
 */
export class TotalsRebuilder {
  private readonly keys: ClusterKeys;
  private readonly now: () => number;
  private readonly job: PeriodicJob;
  private abort?: AbortController;

  constructor(
    private readonly d: StorageJobDeps,
    private readonly opts: RebuilderOptions,
  ) {
    this.keys = clusterKeys(d.cluster);
    this.now = opts.now ?? Date.now;
    this.job = new PeriodicJob(() => this.runOnce(), d.log, 'totals rebuild check failed; retrying');
  }

  /** Checks every few seconds and rebuilds when needed. */
  start(everyMs = 3000): void {
    this.job.start(everyMs);
  }

  async stop(): Promise<void> {
    this.abort?.abort();
    await this.job.stop();
  }

  /**
   * Resolves once the running totals count new samples (`since` is set: a new cluster's totals
   * start at 0, or a rebuild has set its cutoff), or when `signal` aborts. A node polls only after
   * this: a sample logged before a new cluster's totals start would make the cluster look old and
   * trigger a whole rebuild, whose points before its cutoff reach the open buffers only when their
   * period closes.
   */
  async counting(signal: AbortSignal): Promise<void> {
    const started = this.now();
    let said = false;
    while (!signal.aborted) {
      try {
        if (await this.d.redis.exists(this.keys.since)) return;
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

  /** One check: nothing to do, another node is at it, or this node rebuilt. */
  async runOnce(): Promise<'ready' | 'busy' | 'rebuilt'> {
    if ((await totalsState(this.d.redis, this.d.cluster)) === 'ready' && (await this.builtHere())) return 'ready';
    const outcome = await this.d.lock.runExclusive('rebuild-totals', (signal) => this.rebuild(signal));
    return outcome.ran ? outcome.result : 'busy';
  }

  /** Whether this Redis is the server the totals were built on (an older version never said: adopt it). */
  private async builtHere(): Promise<boolean> {
    const [stored, runId] = await Promise.all([this.d.redis.get(this.keys.builtOn), redisIdentity(this.d.redis)]);
    if (stored === runId) return true;
    if (stored === null) {
      await this.d.redis.set(this.keys.builtOn, runId, 'NX');
      return true;
    }
    return false;
  }

  private async rebuild(lockSignal: AbortSignal): Promise<'ready' | 'rebuilt'> {
    const { redis, log } = this.d;
    this.abort = new AbortController();
    const signal = AbortSignal.any([lockSignal, this.abort.signal]);
    const owner = randomBytes(8).toString('hex');
    let cutoff = await redis.hget(this.keys.rebuild, 'T');
    if (cutoff === null) {
      const stale = (await redis.get(this.keys.since)) !== null;
      if (stale && (await this.builtHere())) return 'ready';
      await this.wipe();
      const runId = await redisIdentity(redis);
      if (!(await this.anythingStored())) {
        // a new cluster: nothing to add up; samples waiting for this are counted from 0 on
        await redis.multi().set(this.keys.since, '0').set(this.keys.builtOn, runId).exec();
        log.info('running totals start empty (nothing stored yet)');
        return 'ready';
      }
      const T = (Math.floor(this.now() / this.d.layout.intervalMs) + 2) * this.d.layout.intervalMs;
      await redis
        .multi()
        .hset(this.keys.rebuild, 'T', String(T), 'owner', owner)
        .set(this.keys.since, String(T))
        .set(this.keys.builtOn, runId)
        .exec();
      cutoff = String(T);
      const reason = stale
        ? 'Redis restarted (maybe from an older snapshot) or evicted keys (use maxmemory-policy noeviction)'
        : 'the totals are missing';
      log.warn({ cutoff: new Date(T).toISOString(), reason }, 'rebuilding the running totals and rank from MongoDB');
    } else {
      // resuming a job whose node stopped: from now on only this token's merges count
      await redis.hset(this.keys.rebuild, 'owner', owner);
    }
    const T = Number(cutoff);
    await this.waitForLogs(T, signal);
    if (signal.aborted) throw new Error('totals rebuild interrupted; it resumes where it stopped');
    const merged = await this.computeAndMerge(T, owner, signal);
    if (signal.aborted) throw new Error('totals rebuild interrupted; it resumes where it stopped');
    await redis.del(this.keys.rebuild);
    log.info({ pks: merged, cutoff: new Date(T).toISOString() }, 'running totals and rank rebuilt');
    return 'rebuilt';
  }

  /** Deletes every data key of the cluster: applies stop first (no `since`), so nothing is half-counted. */
  private async wipe(): Promise<void> {
    const { redis, cluster } = this.d;
    await redis.del(this.keys.since);
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${cluster}:*`, 'COUNT', 1000);
      cursor = next;
      const doomed = batch.filter((k) => isDataKey(this.keys, cluster, k));
      if (doomed.length > 0) await redis.unlink(...doomed);
    } while (cursor !== '0');
  }

  private async anythingStored(): Promise<boolean> {
    const names = (await this.d.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
    return names.some(
      (n) => n.startsWith('log_') || n === collectionNames.checkpoints || n === collectionNames.legacyTimeline,
    );
  }

  /** Until T plus the grace has passed and every live member has logged its samples before T. */
  private async waitForLogs(T: number, signal: AbortSignal): Promise<void> {
    for (;;) {
      const wait = T + this.opts.graceMs - this.now();
      if (wait > 0) await sleep(Math.min(wait, 1000), signal);
      else if (await everyMemberLogged(this.d.redis, this.d.cluster, T, this.now())) return;
      else await sleep(250, signal);
      if (signal.aborted) return;
      // a member that stays behind a whole bucket does not hold the totals up any longer
      if (this.now() > T + this.opts.graceMs + this.d.layout.bucketMs) return;
    }
  }

  /** The totals of every sample before T, then merged into Redis in pk order after the last merged. */
  private async computeAndMerge(T: number, owner: string, signal: AbortSignal): Promise<number> {
    const totals = await this.totalsBefore(T, signal);
    const answers = await this.latestAnswers();
    const last = Number((await this.d.redis.hget(this.keys.rebuild, 'last')) ?? -1);
    const pks = [...totals.keys()].filter((pk) => pk > last).sort((a, b) => a - b);
    let merged = 0;
    for (let i = 0; i < pks.length; i += MERGE_BATCH) {
      if (signal.aborted) return merged;
      const chunk = pks.slice(i, i + MERGE_BATCH);
      const args: (string | number)[] = [];
      for (const pk of chunk) {
        const t = totals.get(pk)!;
        const flag = answers.get(pk);
        const suspicious = flag ? (flag.suspicious ? '1' : '0') : '0';
        args.push(
          pk,
          t.n,
          t.sum,
          t.min,
          t.max,
          t.at,
          t.f,
          t.g,
          t.pat,
          t.pat < 0 ? 0 : t.pf,
          t.username,
          suspicious,
          flag ? flag.at : -1,
        );
      }
      const keys = [
        this.keys.rank,
        this.keys.stats,
        this.keys.rebuild,
        this.keys.growth,
        ...chunk.map((pk) => this.keys.influencer(pk)),
      ];
      const r = await mergeTotals(this.d.redis, keys, [String(T), owner, ...args]);
      if (r === -1) throw new Error('another totals rebuild took over');
      merged += chunk.length;
    }
    return merged;
  }

  /**
   * Per pk, the totals of its points before T: the newest checkpoint of its slice (and the base the
   * migration wrote for the previous layout), plus every later logged sample before T.
   */
  private async totalsBefore(T: number, signal: AbortSignal): Promise<Map<number, PkTotals>> {
    const { redis, db, layout } = this.d;
    const totals = new Map<number, PkTotals>();
    const covered = new Array<number>(layout.slices).fill(-Infinity);
    for (let slice = 0; slice < layout.slices; slice++) {
      // a checkpoint of period P holds the points before P + B: those wholly before T
      const doc = await newestCheckpoint(redis, db, layout, this.keys, slice, layout.period(T) - layout.bucketMs);
      if (!doc) continue;
      covered[slice] = doc.p;
      for (const t of decodeCheckpoint(doc.p + layout.bucketMs, doc.b.buffer).totals) totals.set(t.pk, t);
      await redis.hset(this.keys.checkpoints, String(slice), String(doc.p));
    }
    for (const base of await legacyTotals(db, this.d.log)) {
      const t = totals.get(base.pk);
      totals.set(base.pk, t ? mergeOlder(base, t) : base);
    }
    const from = Math.min(...covered.map((p) => (p === -Infinity ? layout.firstPeriod : p + layout.bucketMs)));
    for (let period = from; period < T && !signal.aborted; period += layout.bucketMs) {
      const seen = new IntervalSet(period, layout);
      // the documents counted here: a document that reaches the log later is counted by its reconcile
      const tokens: string[] = [];
      for await (const doc of db.collection<LogDoc>(collectionNames.log(period)).find({})) {
        tokens.push(String(doc._id));
        for (const s of decodeLog(period, doc.b.buffer)) {
          if (s.at >= T || period <= covered[layout.slice(s.pk)]! || !seen.add(s.pk, s.at)) continue;
          let t = totals.get(s.pk);
          if (!t) totals.set(s.pk, (t = emptyTotals(s.pk)));
          if (s.username) t.username = s.username;
          addPoint(t, s);
        }
      }
      for (let i = 0; i < tokens.length; i += 10_000)
        await redis.sadd(this.keys.rebuilt(period), ...tokens.slice(i, i + 10_000));
      if (tokens.length > 0) await redis.expire(this.keys.rebuilt(period), 7 * 86_400);
    }
    return totals;
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
