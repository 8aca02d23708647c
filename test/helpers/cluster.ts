// A real cluster for tests: the bundled mock, nodes in-process or as child processes
// (`influencer-node start`), and a checker that reads back what was stored, interval by interval.
import type { ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { createRedis, type RedisClient } from '../../lib/shared/redis.js';
import { MongoClient, type Db } from 'mongodb';
import { loadConfig, type Config } from '../../lib/ops/config.js';
import { createLogger } from '../../lib/shared/log.js';
import { startMock, type MockOptions, type MockServer } from '../../lib/mock/mockstagram.js';
import { InfluencerNode } from '../../lib/node.js';
import { loadLayout, sliceCount } from '../../lib/storage/format/layout.js';
import { TimelineReader } from '../../lib/storage/read/reader.js';
import { Totals } from '../../lib/storage/state/totals.js';
import { spawnCli } from './cli.js';
import { services, type Owner, type Services } from '../kit/servers.js';

export interface ClusterOptions {
  pks: number;
  intervalMs: number;
  ttlMs: number;
  mock?: Partial<MockOptions>;
  extraEnv?: Record<string, string>;
  /** servers of the test's own (fault tests restart them); shared throwaway ones otherwise */
  redisUrl?: string;
  /** a Redis Cluster of the test's own (its nodes' URLs) */
  redisClusterNodes?: string[];
  mongoUrl?: string;
}

export const PK_MIN = 1_000_000;

export interface TestCluster {
  svc: Services;
  mock: MockServer;
  env: Record<string, string>;
  config: (id: string) => Config;
  /** a node as a child process running `influencer-node start`, with `env` added to the cluster's (`bin`: another version's) */
  spawnNode: (id: string, env?: Record<string, string>, bin?: string) => ChildProcess & { output: () => string };
  /** a node in this process */
  startNode: (id: string) => Promise<InfluencerNode>;
  redis: RedisClient;
  db: Db;
  /** the totals as the layout a new database gets has them; `useStoredLayout` for one an older version made */
  totals: Totals;
  /** `totals` made from the layout stored in the database (its slice count) */
  useStoredLayout: () => Promise<void>;
}

export async function startCluster(t: Owner, opts: ClusterOptions): Promise<TestCluster> {
  const svc = await services(t, {
    redisUrl: opts.redisUrl,
    redisClusterNodes: opts.redisClusterNodes,
    mongoUrl: opts.mongoUrl,
  });
  const mock = await startMock({
    port: 0,
    pkMin: PK_MIN,
    count: opts.pks,
    seed: 42,
    suspiciousDelayScale: 0,
    ...opts.mock,
  });
  const env: Record<string, string> = {
    ...svc.redisEnv,
    MONGO_URL: svc.mongoUrl,
    MONGO_DB: svc.mongoDb,
    CLUSTER: svc.cluster,
    MOCKSTAGRAM_URL: mock.url,
    PK_MIN: String(PK_MIN),
    PK_MAX: String(PK_MIN + opts.pks - 1),
    INTERVAL_MS: String(opts.intervalMs),
    HEARTBEAT_TTL_MS: String(opts.ttlMs),
    FLUSH_MAX_AGE_MS: '200',
    // ten intervals a bucket: periods close, and their buckets are read, within a test
    BUCKET_MS: String(10 * opts.intervalMs),
    REQUEST_TIMEOUT_MS: '1000',
    CONCURRENCY: '64',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    ...opts.extraEnv,
  };
  // fault tests stop and restart Redis: the client reconnects (with its offline queue, as a test's
  // reads may come while it does); its errors are the commands' own
  const redis =
    typeof svc.redisTarget === 'string'
      ? new Redis(svc.redisTarget)
      : createRedis(svc.redisTarget, createLogger('silent'), 'test', { enableOfflineQueue: true });
  redis.on('error', () => undefined);
  await redis.connect().catch(() => undefined);
  const mongo = new MongoClient(env.MONGO_URL, { serverSelectionTimeoutMS: 60_000 });
  const children: ChildProcess[] = [];
  const nodes: InfluencerNode[] = [];
  const config = (id: string): Config => loadConfig({ nodeId: id }, env);
  const cluster: TestCluster = {
    svc,
    mock,
    env,
    config,
    spawnNode(id, extra = {}, bin?: string) {
      const child = spawnCli(['start'], { ...env, ...extra, NODE_ID: id }, bin);
      children.push(child);
      return child;
    },
    async startNode(id) {
      const node = new InfluencerNode(config(id), createLogger('warn', id));
      nodes.push(node);
      await node.start();
      return node;
    },
    redis,
    db: mongo.db(svc.mongoDb),
    totals: new Totals(redis, svc.cluster, sliceCount(config('layout').pkMax - config('layout').pkMin + 1)),
    async useStoredLayout() {
      const layout = await loadLayout(cluster.db, config('layout'));
      cluster.totals = new Totals(redis, svc.cluster, layout.slices);
    },
  };
  t.teardown(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
    // the mock in use: a fault test may have replaced it with a restarted one
    await cluster.mock.close();
    redis.disconnect();
    await mongo.close();
  });
  return cluster;
}

export interface StoreCheck {
  /** (pk, interval) pairs with no point, in the window */
  gaps: Array<[number, number]>;
  /** per pk: number of intervals missing in the window */
  gapsPerPk: Map<number, number>;
  points: number;
  /** pks whose running totals differ from their stored points, each with both sides ("pk 7: totals …; points …") */
  totalsMismatch: string[];
  /** points whose counts are not non-negative integers */
  malformed: number;
  /** (pk, interval) pairs stored twice */
  duplicates: number;
}

/**
 * Reads every stored point of the pks (open buffers and buckets, as the API reads them) and checks,
 * for the intervals in [from, to), that each pk has one, and for every pk that the running totals
 * (samples, followerSum, min, max) equal its points.
 */
export async function checkStore(
  c: TestCluster,
  pks: number[],
  intervalMs: number,
  from: number,
  to: number,
): Promise<StoreCheck> {
  const config = c.config('checker');
  const reader = new TimelineReader(c.redis, c.db, await loadLayout(c.db, config), c.svc.cluster);
  const byPk = new Map<number, Map<number, number>>();
  let malformed = 0;
  let duplicates = 0;
  let count = 0;
  for (const pk of pks) {
    const m = new Map<number, number>();
    for (const p of await reader.points(pk, 0, Date.now() + 10 * config.bucketMs)) {
      count++;
      if (!Number.isSafeInteger(p.f) || p.f < 0 || !Number.isSafeInteger(p.g) || p.g < 0) malformed++;
      if (m.has(p.at)) duplicates++;
      m.set(p.at, p.f);
    }
    if (m.size > 0) byPk.set(pk, m);
  }
  const gaps: Array<[number, number]> = [];
  const gapsPerPk = new Map<number, number>();
  for (const pk of pks) {
    const m = byPk.get(pk);
    for (let at = from; at < to; at += intervalMs) {
      if (!m?.has(at)) {
        gaps.push([pk, at]);
        gapsPerPk.set(pk, (gapsPerPk.get(pk) ?? 0) + 1);
      }
    }
  }
  const totalsMismatch: string[] = [];
  for (const [pk, m] of byPk) {
    const tot = await c.totals.read(pk);
    const values = [...m.values()];
    const sum = values.reduce((a, b) => a + b, 0);
    if (
      !tot ||
      tot.samples !== values.length ||
      tot.followerSum !== sum ||
      tot.followerMin !== Math.min(...values) ||
      tot.followerMax !== Math.max(...values)
    ) {
      const ats = [...m.keys()].sort((a, b) => a - b);
      const side = tot
        ? `totals n ${tot.samples} sum ${tot.followerSum} min ${tot.followerMin} max ${tot.followerMax} latest ${tot.latestAt}`
        : 'no totals';
      totalsMismatch.push(
        `pk ${pk}: ${side}; points n ${values.length} sum ${sum} min ${Math.min(...values)} max ${Math.max(...values)} at ${ats[0]}..${ats.at(-1)}`,
      );
    }
  }
  return { gaps, gapsPerPk, points: count, totalsMismatch, malformed, duplicates };
}

export function range(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}
