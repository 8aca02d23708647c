// Scenario 9: the timeline's storage (lib/storage). Per fill size, a FerretDB of its own (its files
// hold only this data) gets N pks × D days of one-minute points: the closed periods written by the
// closer's SliceWriter (buckets, checkpoints, rollups: the documents a cluster leaves), the open
// period through the live path (log documents and the Lua step into Redis). Then: disk bytes per
// sample of what is kept, FerretDB CPU per stored sample, and one pk's hour, day, week and month as
// the API reads them (p50/p99). Then the rebuild of the totals from the newest checkpoints and the
// log after them, at rising pk counts, with a checkpoint standing for 30 days of history.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { ClusterLock } from '../lib/cluster/locks.js';
import { createLogger } from '../lib/shared/log.js';
import { InfluencerTable, Random } from '../lib/mock/mockstagram.js';
import { readTimeline } from '../lib/read/influencer.js';
import {
  addPoint,
  emptyTotals,
  summarize,
  type BucketSummary,
  type PkTotals,
  type Point,
} from '../lib/storage/format/codec.js';
import { loadLayout, type StorageLayout } from '../lib/storage/format/layout.js';
import { LogWriter } from '../lib/storage/write/log-writer.js';
import { TimelineReader } from '../lib/storage/read/reader.js';
import { TotalsRebuilder } from '../lib/storage/jobs/rebuild.js';
import { SliceWriter } from '../lib/storage/write/slice-writer.js';
import type { Sample } from '../lib/storage/format/documents.js';
import { Totals } from '../lib/storage/state/totals.js';
import { SLICE_MARKS, sliceKeys } from '../lib/shared/keys.js';
import { PK_MIN } from './cluster.js';
import { cpuSeconds, round } from './proc.js';
import { startFerret } from './services.js';
import { stopChild } from '../test/kit/children.js';
import { sleep } from '../test/kit/wait.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const RANGES = [
  ['hour', HOUR],
  ['day', DAY],
  ['week', 7 * DAY],
  ['month', 31 * DAY],
] as const;
const log = createLogger('silent');

export interface StorageOptions {
  /** pks of each fill; every pk gets `days` of one-minute points */
  fills: number[];
  days: number;
  /** reads per range, over random pks of the fill */
  reads: number;
  /** pk counts of the rebuild measurement, and minutes of log after the checkpoint */
  rebuildPks: number[];
  rebuildLogMinutes: number;
  deadline: number;
}

export interface StorageRow {
  pks: number;
  samples: number;
  fillS: number;
  /** FerretDB CPU while the closed periods were written, per sample */
  storeCpuUsPerSample: number;
  /** this process's CPU writing them (encoding, checkpoints), per sample */
  writerCpuUsPerSample: number;
  /** buckets and rollups (collStats: pages of tables and indexes) over the samples */
  keptBytesPerSample: number;
  /** checkpoints kept (the newest and the 26 before it, per slice) over the samples */
  checkpointBytesPerSample: number;
  /** every FerretDB file over the samples (checkpoints not yet removed by retention included) */
  fileBytesPerSample: number;
  reads: Record<string, { points: number; p50Ms: number; p99Ms: number; finds: number }>;
}

export interface RebuildRow {
  pks: number;
  logSamples: number;
  seconds: number;
}

export interface StorageResult {
  days: number;
  rows: StorageRow[];
  rebuild: RebuildRow[];
  stoppedBecause: string;
}

export async function storage(
  redisUrl: string,
  o: StorageOptions,
  progress: (line: string) => void,
): Promise<StorageResult> {
  const rows: StorageRow[] = [];
  const rebuild: RebuildRow[] = [];
  let stoppedBecause = 'every fill measured';
  for (const pks of o.fills) {
    if (Date.now() > o.deadline) {
      stoppedBecause = `time budget reached before ${pks} pks`;
      break;
    }
    rows.push(await measureFill(redisUrl, pks, o, progress));
  }
  for (const pks of o.rebuildPks) {
    if (Date.now() > o.deadline) {
      stoppedBecause = `time budget reached before the rebuild of ${pks} pks`;
      break;
    }
    rebuild.push(await measureRebuild(redisUrl, pks, o.rebuildLogMinutes, progress));
  }
  return { days: o.days, rows, rebuild, stoppedBecause };
}

/** A FerretDB of its own, a Redis connection and a fresh cluster prefix, for one measurement. */
async function withServers<T>(
  redisUrl: string,
  fn: (s: { db: Db; redis: Redis; cluster: string; ferretPid: number }) => Promise<T>,
): Promise<T> {
  const ferret = await startFerret();
  const mongo = new MongoClient(ferret.url, { monitorCommands: true });
  const redis = new Redis(redisUrl);
  try {
    return await fn({
      db: mongo.db('storage'),
      redis,
      cluster: `s${randomBytes(3).toString('hex')}`,
      ferretPid: ferret.child.pid!,
    });
  } finally {
    redis.disconnect();
    await mongo.close().catch(() => undefined);
    await stopChild(ferret.child, 'SIGKILL');
  }
}

async function measureFill(
  redisUrl: string,
  pks: number,
  o: StorageOptions,
  progress: (line: string) => void,
): Promise<StorageRow> {
  return withServers(redisUrl, async ({ db, redis, cluster, ferretPid }) => {
    const now = Date.now();
    const open = Math.floor(now / HOUR) * HOUR;
    const start = open - o.days * DAY;
    const layout = await loadLayout(
      db,
      { intervalMs: MINUTE, bucketMs: HOUR, pkMin: PK_MIN, pkMax: PK_MIN + pks - 1 },
      start,
    );
    const liveTotals = new Totals(redis, cluster, layout.slices);
    await new TotalsRebuilder(
      { redis, db, lock: new ClusterLock(redis, cluster, log), layout, cluster, log, totals: liveTotals },
      { graceMs: 0 },
    ).runOnce();
    const counts = new InfluencerTable(pks, new Random(1, 3));
    const point = (i: number, at: number): Point => {
      counts.touch(i, true);
      return { at, f: counts.followerCount, g: counts.followingCount };
    };

    // the closed periods, as the closer writes them
    const writer = new SliceWriter(db, layout);
    const totals = Array.from({ length: layout.slices }, () => new Map<number, PkTotals>());
    const ferret0 = cpuSeconds(ferretPid) ?? 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let samples = 0;
    for (let period = start; period < open; period += HOUR) {
      const lists: Array<Array<[number, Point[]]>> = Array.from({ length: layout.slices }, () => []);
      for (let i = 0; i < pks; i++) {
        const list = Array.from({ length: 60 }, (_, m) => point(i, period + m * MINUTE));
        lists[layout.slice(PK_MIN + i)]!.push([PK_MIN + i, list]);
        samples += 60;
      }
      for (let s = 0; s < layout.slices; s++) {
        const summaries = new Map<number, BucketSummary>();
        for (const [pk, list] of lists[s]!) {
          let t = totals[s]!.get(pk);
          if (!t) totals[s]!.set(pk, (t = emptyTotals(pk, `influencer-${pk}`)));
          for (const p of list) addPoint(t, p);
          summaries.set(pk, summarize(list));
        }
        await writer.buckets(period, lists[s]!);
        await writer.checkpoint(period, s, totals[s]!, summaries);
        if (period + HOUR === layout.rollup(period) + layout.rollupMs) await writer.rollups(period, s, summaries);
      }
      if ((period - start) % (7 * DAY) === 0)
        progress(
          `    ${pks} pks: ${new Date(period).toISOString().slice(0, 10)} written (${round((performance.now() - t0) / 1000)} s)`,
        );
    }
    const fillS = (performance.now() - t0) / 1000;
    const writerCpu = process.cpuUsage(cpu0);
    const storeCpu = (cpuSeconds(ferretPid) ?? 0) - ferret0;
    for (let s = 0; s < layout.slices; s++)
      await redis.hset(sliceKeys(cluster, layout.slices, s).marks, SLICE_MARKS.checkpoint, String(open - HOUR));

    // the open period so far, through the live path: log documents and the Lua step
    const live = new LogWriter(db, liveTotals, layout, 'bench');
    const upTo = Math.floor(now / MINUTE) * MINUTE;
    for (let at = open; at <= upTo; at += MINUTE) {
      const batch: Sample[] = [];
      for (let i = 0; i < pks; i++) {
        const p = point(i, at);
        batch.push({
          pk: PK_MIN + i,
          at,
          username: `influencer-${PK_MIN + i}`,
          followerCount: p.f,
          followingCount: p.g,
        });
      }
      for (let k = 0; k < batch.length; k += 1000) {
        const b = live.batch(batch.slice(k, k + 1000));
        await live.log(b);
        await live.apply(b);
      }
    }

    const sizes = await sizesByFamily(db);
    const history = samples;
    progress(
      `  ${pks} pks: ${history.toLocaleString('en-US')} samples in ${round(fillS)} s; buckets and rollups ${round(sizes.kept / history, 2)} B/sample`,
    );
    const reads = await measureReads(
      new TimelineReader(redis, db, layout, cluster),
      db,
      pks,
      upTo + MINUTE,
      o.reads,
      progress,
    );
    return {
      pks,
      samples: history,
      fillS: round(fillS, 1),
      storeCpuUsPerSample: round((storeCpu * 1e6) / history, 2),
      writerCpuUsPerSample: round((writerCpu.user + writerCpu.system) / history, 2),
      keptBytesPerSample: round(sizes.kept / history, 2),
      checkpointBytesPerSample: round(((sizes.checkpoints / (o.days * 24)) * 27) / history, 3),
      fileBytesPerSample: round(sizes.total / history, 2),
      reads,
    };
  });
}

/** Pages of tables and indexes per family of collections (FerretDB's collStats reads SQLite's dbstat). */
async function sizesByFamily(db: Db): Promise<{ kept: number; checkpoints: number; total: number }> {
  let kept = 0;
  let checkpoints = 0;
  for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray()) {
    const s = (await db.command({ collStats: name })) as { storageSize?: number; totalIndexSize?: number };
    const bytes = (s.storageSize ?? 0) + (s.totalIndexSize ?? 0);
    if (/^(buckets|rollups)_/.test(name)) kept += bytes;
    if (name === 'checkpoints') checkpoints += bytes;
  }
  const stats = (await db.command({ dbStats: 1 })) as { totalSize?: number; storageSize?: number; indexSize?: number };
  return { kept, checkpoints, total: stats.totalSize ?? (stats.storageSize ?? 0) + (stats.indexSize ?? 0) };
}

/** p50/p99 of one pk's timeline read as the API reads it, for each range ending at `end`, and the finds per read. */
async function measureReads(
  reader: TimelineReader,
  db: Db,
  pks: number,
  end: number,
  reads: number,
  progress: (line: string) => void,
): Promise<StorageRow['reads']> {
  const out: StorageRow['reads'] = {};
  const rand = new Random(5, 1);
  let finds = 0;
  const count = (e: { commandName: string }): void => {
    if (e.commandName === 'find') finds++;
  };
  db.client.on('commandStarted', count);
  for (const [name, span] of RANGES) {
    const times: number[] = [];
    let points = 0;
    finds = 0;
    for (let i = 0; i < reads; i++) {
      const pk = PK_MIN + Math.floor(rand.next() * pks);
      const t = performance.now();
      points = (await readTimeline(reader, pk, end - span, end)).points.length;
      times.push(performance.now() - t);
    }
    times.sort((a, b) => a - b);
    const pick = (q: number): number => round(times[Math.min(times.length - 1, Math.floor(q * times.length))]!, 1);
    out[name] = { points, p50Ms: pick(0.5), p99Ms: pick(0.99), finds: round(finds / reads, 1) };
    progress(
      `    read ${name}: ${points} points, p50 ${out[name].p50Ms} ms, p99 ${out[name].p99Ms} ms, ${out[name].finds} finds`,
    );
  }
  db.client.off('commandStarted', count);
  return out;
}

/**
 * The rebuild after Redis lost everything: a checkpoint per slice for every pk standing for 30 days
 * of history (written by the SliceWriter), then `logMinutes` of one-minute samples of every pk in the
 * log of the period after it (written by the LogWriter, at most 60); timed from the start of the rebuild to the
 * totals ready, less the wait for its cutoff.
 */
async function measureRebuild(
  redisUrl: string,
  pks: number,
  logMinutes: number,
  progress: (line: string) => void,
): Promise<RebuildRow> {
  return withServers(redisUrl, async ({ db, redis, cluster }) => {
    const now = Date.now();
    const open = Math.floor(now / HOUR) * HOUR;
    const layout: StorageLayout = await loadLayout(
      db,
      { intervalMs: MINUTE, bucketMs: HOUR, pkMin: PK_MIN, pkMax: PK_MIN + pks - 1 },
      open - 30 * DAY,
    );
    const writer = new SliceWriter(db, layout);
    const checkpointAt = open - 2 * HOUR;
    for (let s = 0; s < layout.slices; s++) {
      const totals = new Map<number, PkTotals>();
      for (
        let pk = PK_MIN + ((s - (PK_MIN % layout.slices) + layout.slices) % layout.slices);
        pk < PK_MIN + pks;
        pk += layout.slices
      ) {
        totals.set(pk, {
          pk,
          n: 43_200,
          sum: 43_200 * 100_000,
          min: 50_000,
          max: 150_000,
          at: checkpointAt + 59 * MINUTE,
          f: 100_000,
          g: 1000,
          pat: checkpointAt + 58 * MINUTE,
          pf: 99_990,
          username: `influencer-${pk}`,
        });
      }
      await writer.checkpoint(checkpointAt, s, totals, new Map());
    }
    const rebuildTotals = new Totals(redis, cluster, layout.slices);
    const logger = new LogWriter(db, rebuildTotals, layout, 'bench');
    let logSamples = 0;
    for (let m = 0; m < logMinutes; m++) {
      const at = checkpointAt + HOUR + m * MINUTE;
      for (let first = 0; first < pks; first += 1000) {
        const batch: Sample[] = [];
        for (let i = first; i < Math.min(pks, first + 1000); i++)
          batch.push({ pk: PK_MIN + i, at, username: '', followerCount: 100_000 + m, followingCount: 1000 });
        await logger.log(logger.batch(batch));
        logSamples += batch.length;
      }
    }
    progress(`  rebuild of ${pks} pks: checkpoints and ${logSamples.toLocaleString('en-US')} logged samples written`);
    let cutoff = 0;
    const rebuilder = new TotalsRebuilder(
      { redis, db, lock: new ClusterLock(redis, cluster, log), layout, cluster, log, totals: rebuildTotals },
      { graceMs: 0, now: () => (cutoff > 0 ? Math.max(Date.now(), cutoff + 1) : Date.now()) },
    );
    const t0 = performance.now();
    const run = rebuilder.runOnce();
    for (;;) {
      const T = await redis.hget(sliceKeys(cluster, layout.slices, 0).marks, SLICE_MARKS.rebuildCutoff);
      if (T !== null) {
        cutoff = Number(T);
        break;
      }
      await sleep(5);
    }
    const outcome = await run;
    const seconds = round((performance.now() - t0) / 1000, 1);
    if (outcome !== 'rebuilt') throw new Error(`rebuild of ${pks} pks: ${outcome}`);
    const one = await rebuildTotals.read(PK_MIN);
    if (!one || one.samples !== 43_200 + logMinutes)
      throw new Error(
        `rebuild of ${pks} pks: pk ${PK_MIN} has ${one?.samples} samples, expected ${43_200 + logMinutes}`,
      );
    progress(`  rebuild of ${pks} pks: ${seconds} s`);
    return { pks, logSamples, seconds };
  });
}
