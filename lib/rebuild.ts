import type { Redis } from 'ioredis';
import type { Db } from 'mongodb';
import type { ClusterLock } from './locks.js';
import type { Logger } from './log.js';
import { collections, pointId } from './store.js';
import { loadScript, totalsKeys } from './totals.js';

export type TotalsState = 'ready' | 'rebuilding' | 'missing';

const MERGE_BATCH = 500;

const MERGE_TOTALS = loadScript('merge-totals.lua');

type WithMerge = Redis & { mergeTotals(numKeys: number, ...args: (string | number)[]): Promise<number> };

/** Whether the running totals in Redis can be trusted, are being rebuilt, or are gone. */
export async function totalsState(redis: Redis, cluster: string): Promise<TotalsState> {
  const keys = totalsKeys(cluster);
  const [since, pending] = await Promise.all([redis.get(keys.since), redis.hget(keys.rebuild, 'T')]);
  if (pending !== null) return 'rebuilding';
  return since === null ? 'missing' : 'ready';
}

/**
 * Restores the running totals and the rank index after Redis lost them (a restart without
 * persistence, a flush), as a singleton job. A cutoff T a little in the future splits the points:
 * the Lua script counts every sample from T on as usual, and this job, once every sample before T
 * has been written, adds up the points before T from MongoDB and merges them in. The job records
 * the last pk it merged with each merge, so another node resumes a job whose node died.
 * On a cluster whose timeline is still empty it only records that the totals start at 0.
 */
export class TotalsRebuilder {
  private readonly keys: ReturnType<typeof totalsKeys>;
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private running?: Promise<unknown>;
  private lastError?: string;

  constructor(
    private readonly redis: Redis,
    private readonly db: Db,
    private readonly lock: ClusterLock,
    private readonly cluster: string,
    private readonly intervalMs: number,
    private readonly log: Logger,
    /** how long after the cutoff every sample before it is written (flush age and a margin) */
    private readonly graceMs = 5000,
    /** the clock samples are stamped with */
    private readonly now: () => number = Date.now,
  ) {
    this.keys = totalsKeys(cluster);
    if (!('mergeTotals' in redis)) redis.defineCommand('mergeTotals', { lua: MERGE_TOTALS });
  }

  /** Checks every few seconds and rebuilds when needed. */
  start(everyMs = 3000): void {
    this.stopped = false;
    const loop = async (): Promise<void> => {
      this.running = this.runOnce().catch((err: Error) => {
        if (err.message !== this.lastError) this.log.warn({ err: err.message }, 'totals rebuild check failed; retrying');
        this.lastError = err.message;
      });
      await this.running;
      if (!this.stopped) this.timer = setTimeout(loop, everyMs);
    };
    void loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.abort?.abort();
    await this.running;
  }

  private abort?: AbortController;

  /** One check: nothing to do, another node is at it, or this node rebuilt. */
  async runOnce(): Promise<'ready' | 'busy' | 'rebuilt'> {
    if ((await totalsState(this.redis, this.cluster)) === 'ready') return 'ready';
    const outcome = await this.lock.runExclusive('rebuild-totals', (signal) => this.rebuild(signal));
    return outcome.ran ? outcome.result : 'busy';
  }

  private async rebuild(lockSignal: AbortSignal): Promise<'ready' | 'rebuilt'> {
    this.abort = new AbortController();
    const signal = AbortSignal.any([lockSignal, this.abort.signal]);
    const since = await this.redis.get(this.keys.since);
    let cutoff = await this.redis.hget(this.keys.rebuild, 'T');
    if (cutoff === null) {
      if (since !== null) return 'ready';
      const { timeline } = collections(this.db);
      if ((await timeline.findOne({}, { projection: { _id: 1 } })) === null) {
        // a new cluster: nothing to add up; samples waiting for this are counted from 0 on
        await this.redis.set(this.keys.since, '0', 'NX');
        this.log.info('running totals start empty (no timeline yet)');
        return 'ready';
      }
      const T = (Math.floor(this.now() / this.intervalMs) + 2) * this.intervalMs;
      await this.redis.multi().hset(this.keys.rebuild, 'T', String(T)).set(this.keys.since, String(T)).exec();
      cutoff = String(T);
      this.log.warn({ cutoff: new Date(T).toISOString() }, 'running totals and rank are missing in Redis: rebuilding them from MongoDB');
    }
    const T = Number(cutoff);
    const wait = T + this.graceMs - this.now();
    if (wait > 0) await abortableSleep(wait, signal);
    if (signal.aborted) throw new Error('totals rebuild interrupted; it resumes where it stopped');
    const merged = await this.scanAndMerge(T, signal);
    if (signal.aborted) throw new Error('totals rebuild interrupted; it resumes where it stopped');
    await this.redis.del(this.keys.rebuild);
    this.log.info({ pks: merged, cutoff: new Date(T).toISOString() }, 'running totals and rank rebuilt');
    return 'rebuilt';
  }

  /** Adds up the points before T per pk, in pk order, after the last pk already merged. */
  private async scanAndMerge(T: number, signal: AbortSignal): Promise<number> {
    const last = Number((await this.redis.hget(this.keys.rebuild, 'last')) ?? -1);
    const { timeline, influencers, suspicious } = collections(this.db);
    const points = timeline.find({ _id: { $gt: pointId(last, 9_999_999_999_999) }, t: { $lt: new Date(T) } }, { projection: { pk: 1, t: 1, f: 1, g: 1 } }).sort({ _id: 1 });
    const docs = influencers.find({ _id: { $gt: last } }, { projection: { username: 1, suspicious: 1, suspiciousAt: 1 } }).sort({ _id: 1 });
    const answers = suspicious.find({ _id: { $gt: pointId(last, 9_999_999_999_999) } }, { projection: { pk: 1, at: 1, suspicious: 1 } }).sort({ _id: 1 });
    let nextDoc = await docs.next();
    let nextAnswer = await answers.next();
    // the username of a pk, and its latest daily suspicious answer: from the `suspicious`
    // collection, or from the influencer document where an earlier version stored it
    const documentOf = async (pk: number): Promise<[string, string, number]> => {
      while (nextDoc && nextDoc._id < pk) nextDoc = await docs.next();
      const doc = nextDoc && nextDoc._id === pk ? nextDoc : undefined;
      let flag: [string, number] = doc?.suspicious !== undefined && doc.suspiciousAt ? [doc.suspicious ? '1' : '0', doc.suspiciousAt.getTime()] : ['0', -1];
      while (nextAnswer && nextAnswer.pk < pk) nextAnswer = await answers.next();
      while (nextAnswer && nextAnswer.pk === pk) {
        if (nextAnswer.at.getTime() > flag[1]) flag = [nextAnswer.suspicious ? '1' : '0', nextAnswer.at.getTime()];
        nextAnswer = await answers.next();
      }
      return [doc?.username ?? '', ...flag];
    };
    let merged = 0;
    let batch: (string | number)[] = [];
    let keys: string[] = [];
    // per pk: count, sum, min, max, the latest point and the one before it
    let cur: { pk: number; n: number; s: number; mn: number; mx: number; at: number; f: number; g: number; pat: number; pf: number } | undefined;
    const flush = async (): Promise<void> => {
      if (keys.length === 0) return;
      const r = await (this.redis as unknown as WithMerge).mergeTotals(4 + keys.length, this.keys.rank, this.keys.stats, this.keys.rebuild, this.keys.growth, ...keys, String(T), ...batch);
      if (r === -1) throw new Error('another totals rebuild took over');
      merged += keys.length;
      batch = [];
      keys = [];
    };
    const close = async (): Promise<void> => {
      if (!cur) return;
      keys.push(this.keys.influencer(cur.pk));
      batch.push(cur.pk, cur.n, cur.s, cur.mn, cur.mx, cur.at, cur.f, cur.g, cur.pat, cur.pf, ...await documentOf(cur.pk));
      if (keys.length >= MERGE_BATCH) await flush();
    };
    try {
      for await (const p of points) {
        if (signal.aborted) return merged;
        const at = p.t.getTime();
        if (!cur || cur.pk !== p.pk) {
          await close();
          cur = { pk: p.pk, n: 0, s: 0, mn: p.f, mx: p.f, at, f: p.f, g: p.g, pat: -1, pf: 0 };
        }
        cur.n++;
        cur.s += p.f;
        if (p.f < cur.mn) cur.mn = p.f;
        if (p.f > cur.mx) cur.mx = p.f;
        if (at > cur.at) Object.assign(cur, { pat: cur.at, pf: cur.f, at, f: p.f, g: p.g });
        else if (at < cur.at && at > cur.pat) Object.assign(cur, { pat: at, pf: p.f });
      }
      await close();
      await flush();
    } finally {
      await points.close();
      await docs.close();
      await answers.close();
    }
    return merged;
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void { clearTimeout(timer); signal.removeEventListener('abort', done); resolve(); }
    signal.addEventListener('abort', done, { once: true });
  });
}
