// The storage layer on real servers, wired as a node wires it but driven by hand: a clock the test
// moves, a LogWriter whose steps run when asked, the closer, the rebuilder and the reader.
import type { RedisClient } from '../../lib/shared/redis.js';
import type { Db } from 'mongodb';
import { ClusterLock } from '../../lib/cluster/locks.js';
import { createLogger } from '../../lib/shared/log.js';
import { PeriodCloser } from '../../lib/storage/jobs/closer.js';
import type { Point } from '../../lib/storage/format/codec.js';
import { loadLayout, type StorageLayout } from '../../lib/storage/format/layout.js';
import { LogWriter, type PendingBatch } from '../../lib/storage/write/log-writer.js';
import { TimelineReader } from '../../lib/storage/read/reader.js';
import type { StorageJobDeps } from '../../lib/storage/jobs/job-deps.js';
import { TotalsRebuilder } from '../../lib/storage/jobs/rebuild.js';
import type { Sample } from '../../lib/storage/format/documents.js';
import { Totals } from '../../lib/storage/state/totals.js';
import { takeRanking } from '../../lib/storage/state/ranking.js';
import { SLICE_MARKS, sliceKeys } from '../../lib/shared/keys.js';
import { connected, type Owner } from '../kit/servers.js';
import { sleep } from '../kit/wait.js';

export const MIN = 60_000;
export const HOUR = 3_600_000;
const log = createLogger('silent');

export interface StorageKit {
  redis: RedisClient;
  db: Db;
  cluster: string;
  layout: StorageLayout;
  totals: Totals;
  writer: LogWriter;
  closer: PeriodCloser;
  rebuilder: TotalsRebuilder;
  /** what the rebuilder and closer are given (this node's lock included), for the storage's other jobs */
  deps: StorageJobDeps & { totals: Totals };
  reader: TimelineReader;
  /** the clock the closer and rebuilder read; tests move it */
  clock: { now: number };
  /** logs, applies and registers a batch, as a node's SampleWriter does */
  store(samples: Sample[], writer?: LogWriter): Promise<PendingBatch>;
  /** a second node's writer on the same data */
  otherWriter(nodeId: string): LogWriter;
  /** every point of a pk, as the reader sees them */
  points(pk: number, from?: number, to?: number): Promise<Point[]>;
  /** takes every slice's ranking snapshot now (as the nodes' ranking job does once an interval) */
  rank(): Promise<void>;
}

export interface KitOptions {
  intervalMs?: number;
  bucketMs?: number;
  pkMin?: number;
  pkMax?: number;
  /** the clock's start (epoch ms); the layout's first period is its period */
  start?: number;
}

export async function storageKit(t: Owner, o: KitOptions = {}): Promise<StorageKit> {
  const { redis, db, cluster } = await connected(t, 'storage-test');
  const intervalMs = o.intervalMs ?? MIN;
  const bucketMs = o.bucketMs ?? HOUR;
  const clock = { now: o.start ?? 1_764_576_000_000 };
  const now = (): number => clock.now;
  const layout = await loadLayout(
    db,
    { intervalMs, bucketMs, pkMin: o.pkMin ?? 1_000_000, pkMax: o.pkMax ?? 1_000_999 },
    clock.now,
  );
  const totals = new Totals(redis, cluster, layout.slices);
  const deps = { redis, db, lock: new ClusterLock(redis, cluster, log), layout, cluster, log, totals };
  const rebuilder = new TotalsRebuilder(deps, { graceMs: 0, now });
  await startTotals(redis, db, layout, cluster);
  const writer = new LogWriter(db, totals, layout, 'node-a');
  const closer = new PeriodCloser(deps, { graceMs: 0, now });
  const reader = new TimelineReader(redis, db, layout, cluster);
  return {
    redis,
    db,
    cluster,
    layout,
    deps,
    totals,
    writer,
    closer,
    rebuilder,
    reader,
    clock,
    async store(samples, w = writer) {
      const batch = w.batch(samples);
      await w.log(batch);
      await w.apply(batch);
      await w.register(batch);
      return batch;
    },
    otherWriter: (nodeId) => new LogWriter(db, totals, layout, nodeId),
    points: (pk, from = 0, to = clock.now + 10 * bucketMs) => reader.points(pk, from, to),
    rank: () => takeRankings(redis, cluster, totals),
  };
}

/** Logs, applies and registers samples as a node does, one batch per call. */
export function sampleStore(
  db: Db,
  totals: Totals,
  layout: StorageLayout,
  nodeId = 'test-node',
): (samples: Sample[]) => Promise<PendingBatch> {
  const writer = new LogWriter(db, totals, layout, nodeId);
  return async (samples) => {
    const batch = writer.batch(samples);
    await writer.log(batch);
    await writer.apply(batch);
    await writer.register(batch);
    return batch;
  };
}

/** The totals of a new cluster, started at 0 as its first node does. */
export async function startTotals(redis: RedisClient, db: Db, layout: StorageLayout, cluster: string): Promise<void> {
  const totals = new Totals(redis, cluster, layout.slices);
  const rebuilder = new TotalsRebuilder(
    { redis, db, lock: new ClusterLock(redis, cluster, log), layout, cluster, log, totals },
    { graceMs: 0 },
  );
  if ((await rebuilder.runOnce()) !== 'ready') throw new Error("a new cluster's totals should start at 0");
}

/** Runs a rebuild, moving `clock` past its cutoff once it has chosen one (no wait for real time). */
export async function rebuildNow(
  rebuilder: TotalsRebuilder,
  redis: RedisClient,
  cluster: string,
  clock: { now: number },
  slices: number,
): Promise<string> {
  // a cutoff left by a rebuild that stopped is replaced by the new one's
  const before = await rebuildCutoff(redis, cluster, slices);
  const run = rebuilder.runOnce();
  for (let i = 0; i < 200; i++) {
    const T = await rebuildCutoff(redis, cluster, slices);
    if (T !== null && T !== before) {
      clock.now = Number(T) + 1;
      break;
    }
    await sleep(20);
  }
  return run;
}

export function sample(pk: number, at: number, followers: number, following = 100): Sample {
  return { pk, at, username: `influencer-${pk}`, followerCount: followers, followingCount: following };
}

/** The cutoff of a rebuild in progress (the first rebuilding slice's), or null. */
export async function rebuildCutoff(redis: RedisClient, cluster: string, slices: number): Promise<string | null> {
  for (let s = 0; s < slices; s++) {
    const T = await redis.hget(sliceKeys(cluster, slices, s).marks, SLICE_MARKS.rebuildCutoff);
    if (T !== null) return T;
  }
  return null;
}

/** Every slice's ranking snapshot taken now, and `totals` made to read them at its next question. */
export async function takeRankings(redis: RedisClient, cluster: string, totals: Totals): Promise<void> {
  for (let s = 0; s < totals.slices; s++)
    await takeRanking(redis, sliceKeys(cluster, totals.slices, s), Date.now(), Date.now());
  totals.reloadRankings();
}

/** The pks whose running totals (samples, follower sum) differ from their points, a pk without either counting as 0. */
export async function totalsMismatches(k: StorageKit, pks: number[]): Promise<string[]> {
  const wrong: string[] = [];
  for (const pk of pks) {
    const points = await k.points(pk);
    const totals = await k.totals.read(pk);
    const sum = points.reduce((s, p) => s + p.f, 0);
    if ((totals?.samples ?? 0) !== points.length || (totals?.followerSum ?? 0) !== sum)
      wrong.push(`pk ${pk}: totals ${totals?.samples}/${totals?.followerSum}, points ${points.length}/${sum}`);
  }
  return wrong;
}
