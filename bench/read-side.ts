// The read side: `influencer-node serve` over the state nodes would have written for N tracked pks,
// loaded route by route with autocannon. The running totals, rank and growth index of every pk are
// seeded in Redis by the product's Lua script (two samples a pk) and its daily suspicious answer by
// Totals.setSuspicious; a few pks also get a day of one-minute points in MongoDB through BatchWriter.
import { loadConfig } from '../lib/ops/config.js';
import { ClusterLock } from '../lib/cluster/locks.js';
import { createLogger } from '../lib/shared/log.js';
import { InfluencerTable, Random, isSuspicious } from '../lib/mock/mockstagram.js';
import { loadLayout } from '../lib/storage/format/layout.js';
import { LogWriter } from '../lib/storage/write/log-writer.js';
import { TotalsRebuilder } from '../lib/storage/jobs/rebuild.js';
import type { Sample } from '../lib/storage/format/documents.js';
import { Totals } from '../lib/storage/state/totals.js';
import { takeRanking } from '../lib/storage/state/ranking.js';
import { sliceKeys } from '../lib/shared/keys.js';
import { autocannon, randomPkRequests, type AutocannonRequest } from './autocannon.js';
import { BenchCluster, PK_MIN, redisTotal, type Infra } from './cluster.js';
import { bottleneck } from './measure.js';
import { cpuBetween, round, snapshot } from './proc.js';
import { freePort } from '../test/kit/servers.js';
import { stopChild, waitForChild } from '../test/kit/children.js';

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY_POINTS = 1440;
/** pks per Lua call while seeding (two samples each), and calls in flight */
const SEED_CHUNK = 500;
const SEED_IN_FLIGHT = 4;
const FLAG_CHUNK = 20_000;
/** as many as autocannon cycles through cheaply: with 10,000 it served a quarter of the requests */
const PAGE_PATHS = 1000;
const SEED = 1;

export interface ReadSideOptions {
  /** tracked pks: totals, rank and growth in Redis */
  pks: number;
  /** pks with a day of one-minute points in MongoDB, spread over the range */
  timelinePks: number;
  /** load per route, after warmUpS of warm-up */
  seconds: number;
  warmUpS: number;
  connections: number;
  /**
   * The timeline route is answered by FerretDB reading its whole collection: a few connections (more
   * only queue) and a number of requests rather than a duration, which might not see one answer.
   */
  timelineConnections: number;
  timelineRequests: number;
  /** the connections with which each route's latency is measured again, far from saturation */
  lightConnections: number;
  deadline: number;
  cores: number;
}

interface Route {
  route: string;
  path: string;
  requests: AutocannonRequest[];
  connections: number;
  amount?: number;
}

export interface RouteResult {
  route: string;
  path: string;
  connections: number;
  /** answers measured */
  requests: number;
  seconds: number;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** the same route with `connections` (a few, far from saturation): what a reader waits at that load */
  paced: { connections: number; requestsPerSec: number; p50Ms: number; p99Ms: number } | null;
  /** connection errors, timeouts included */
  errors: number;
  non2xx: number;
  serveCpuUsPerRequest: number | null;
  cpu: { serve: number; redis: number; ferretdb: number; autocannon: number; machine: number };
  bottleneck: string;
}

export interface ReadSideResult {
  pks: number;
  seed: {
    redisS: number;
    redisBytes: number;
    timelinePks: number;
    timelinePoints: number;
    timelineS: number;
    totalS: number;
  };
  seconds: number;
  routes: RouteResult[];
}

/** Seeds the state, starts serve, loads each route in turn; drops the cluster's data at the end. */
export async function readSide(
  infra: Infra,
  o: ReadSideOptions,
  progress: (line: string) => void,
): Promise<ReadSideResult> {
  // about 50 µs a pk to seed Redis, and 100 µs a point to insert it or to read it back: each timeline request reads them all
  const pointsS = o.timelinePks * DAY_POINTS * 1e-4;
  const needS =
    o.pks * 50e-6 +
    pointsS +
    4 * (o.seconds + o.warmUpS + 1) +
    (o.timelineRequests / o.timelineConnections + 1) * pointsS +
    5;
  if (Date.now() + needS * 1000 > o.deadline)
    throw new Error(`skipped for the time budget (needs about ${Math.round(needS)} s)`);
  const c = new BenchCluster(infra, { pks: o.pks, intervalMs: MINUTE, ttlMs: 3000, concurrency: 1 });
  try {
    const end = Math.floor(Date.now() / MINUTE) * MINUTE;
    const timelinePks = Array.from(
      { length: o.timelinePks },
      (_, i) => PK_MIN + Math.floor((i * o.pks) / o.timelinePks),
    );
    // serve starts while the state is seeded: it reads nothing until asked
    const port = await freePort();
    const serve = c.spawn('serve', ['serve', '--host', '127.0.0.1', '--port', String(port)]);
    const seed = await seedState(c, end, timelinePks, progress);
    await waitForChild(port, serve.child, 'serve');
    const url = `http://127.0.0.1:${port}`;
    const hour = `?from=${end - HOUR}&to=${end}`;
    const fixed = (path: string): AutocannonRequest[] => [{ method: 'GET', path }];
    const routes: Route[] = [
      {
        route: 'influencer page',
        path: '/api/influencers/:pk',
        requests: randomPkRequests(PAGE_PATHS, PK_MIN, o.pks, (pk) => `/api/influencers/${pk}`),
        connections: o.connections,
      },
      {
        route: 'top 10 by followers',
        path: '/api/influencers?sort=followers&limit=10',
        requests: fixed('/api/influencers?sort=followers&limit=10'),
        connections: o.connections,
      },
      {
        route: 'top 100 by followers',
        path: '/api/influencers?sort=followers&limit=100',
        requests: fixed('/api/influencers?sort=followers&limit=100'),
        connections: o.connections,
      },
      { route: 'stats', path: '/api/stats', requests: fixed('/api/stats'), connections: o.connections },
      {
        route: 'timeline, 1 hour',
        path: '/api/influencers/:pk/timeline?from=T-1h&to=T',
        requests: timelinePks.map((pk) => ({ method: 'GET', path: `/api/influencers/${pk}/timeline${hour}` })),
        connections: o.timelineConnections,
        amount: o.timelineRequests,
      },
    ];
    const results: RouteResult[] = [];
    for (const r of routes) {
      await expectData(url, r.requests[0]!.path!);
      results.push(await load(c, url, r, o));
      const x = results[results.length - 1]!;
      progress(`  ${r.route}: ${x.requestsPerSec} req/s, p99 ${x.p99Ms} ms (${r.connections} connections)`);
      c.assertAlive();
    }
    await stopChild(serve.child);
    return { pks: o.pks, seed, seconds: o.seconds, routes: results };
  } finally {
    await c.close();
  }
}

/**
 * What nodes would have written: every pk's latest two samples applied to the totals by the Lua
 * script (so rank, growth, stats and the top lists are those of N pks), each pk's daily suspicious
 * answer next to its totals, and a day of points for `timelinePks` (stored by BatchWriter, which
 * also applies them and writes their influencer documents). No route reads other documents.
 */
async function seedState(
  c: BenchCluster,
  end: number,
  timelinePks: number[],
  progress: (line: string) => void,
): Promise<ReadSideResult['seed']> {
  const { redisClient: redis, mongo } = c.infra;
  const db = mongo.db(c.dbName);
  const log = createLogger('silent');
  const t0 = performance.now();
  const memory0 = await usedMemory(c);
  // as the first node of a new cluster does, its layout begun two days ago: the totals start at 0
  const layout = await loadLayout(db, loadConfig({}, c.env('seed')), end - 2 * DAY_POINTS * MINUTE);
  const totals = new Totals(redis, c.cluster, layout.slices);
  await new TotalsRebuilder(
    { redis, db, lock: new ClusterLock(redis, c.cluster, log), layout, cluster: c.cluster, log, totals },
    { graceMs: 0 },
  ).runOnce();
  // the counts the mock would have answered
  const counts = new InfluencerTable(c.opts.pks, new Random(SEED, 3));
  const sample = (pk: number, at: number, move: boolean): Sample => {
    counts.touch(pk - PK_MIN, move);
    return {
      pk,
      at,
      username: `influencer-${pk}`,
      followerCount: counts.followerCount,
      followingCount: counts.followingCount,
    };
  };

  const writer = new LogWriter(db, totals, layout, 'seed');
  for (const pk of timelinePks) {
    const batch = writer.batch(
      Array.from({ length: DAY_POINTS }, (_, m) => sample(pk, end - (DAY_POINTS - m) * MINUTE, m > 0)),
    );
    await writer.log(batch);
    await writer.apply(batch);
    await writer.register(batch);
  }
  const timelineS = (performance.now() - t0) / 1000;

  const t1 = performance.now();
  const withTimeline = new Set(timelinePks);
  const inFlight: Promise<unknown>[] = [];
  for (let first = PK_MIN; first <= c.pkMax; first += SEED_CHUNK) {
    const samples: Sample[] = [];
    for (let pk = first; pk < Math.min(first + SEED_CHUNK, c.pkMax + 1); pk++) {
      if (!withTimeline.has(pk)) samples.push(sample(pk, end - 2 * MINUTE, false), sample(pk, end - MINUTE, true));
    }
    // straight into Redis, as applied log documents would leave it (the log itself is not read here)
    const period = layout.period(end - MINUTE);
    const apply = (p: number, list: Sample[]): Promise<unknown> =>
      Promise.all([...totals.bySlice(list)].map(([slice, part]) => totals.applySlice(p, slice, part, 'live')));
    inFlight.push(
      apply(
        period,
        samples.filter((x) => layout.period(x.at) === period),
      ),
    );
    if (layout.period(end - 2 * MINUTE) !== period)
      inFlight.push(
        apply(
          layout.period(end - 2 * MINUTE),
          samples.filter((x) => x.at === end - 2 * MINUTE),
        ),
      );
    if (inFlight.length >= SEED_IN_FLIGHT) await inFlight.shift();
  }
  await Promise.all(inFlight);
  for (let first = PK_MIN; first <= c.pkMax; first += FLAG_CHUNK) {
    const flags: Promise<void>[] = [];
    for (let pk = first; pk < Math.min(first + FLAG_CHUNK, c.pkMax + 1); pk++) {
      counts.touch(pk - PK_MIN, false);
      flags.push(totals.setSuspicious(pk, isSuspicious(counts.followerCount, counts.followingCount), end - HOUR));
    }
    await Promise.all(flags);
  }
  // the ranking snapshots the nodes' job takes once an interval
  for (let slice = 0; slice < layout.slices; slice++)
    await takeRanking(redis, sliceKeys(c.cluster, layout.slices, slice), end, Date.now());
  const redisS = (performance.now() - t1) / 1000;
  const seed = {
    redisS: round(redisS, 1),
    redisBytes: (await usedMemory(c)) - memory0,
    timelinePks: timelinePks.length,
    timelinePoints: timelinePks.length * DAY_POINTS,
    timelineS: round(timelineS, 1),
    totalS: round((performance.now() - t0) / 1000, 1),
  };
  progress(
    `  seeded ${c.opts.pks} pks in Redis in ${seed.redisS} s, ${seed.timelinePoints} points in ${seed.timelineS} s`,
  );
  return seed;
}

async function usedMemory(c: BenchCluster): Promise<number> {
  return Number(/^used_memory:(\d+)/m.exec(await c.infra.redisClient.info('memory'))?.[1] ?? 0);
}

/** Fails early when the seed did not give the route its data (a 404 would be measured as fast). */
async function expectData(url: string, path: string): Promise<void> {
  const res = await fetch(`${url}${path}`);
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  await res.body?.cancel();
}

async function load(c: BenchCluster, url: string, r: Route, o: ReadSideOptions): Promise<RouteResult> {
  const pids = new Map([...c.pids(), ['autocannon', process.pid] as const]);
  const run = (duration: number, amount?: number) =>
    autocannon({ url, connections: r.connections, duration, requests: r.requests, ...(amount ? { amount } : {}) });
  await (r.amount ? run(0, r.connections) : run(o.warmUpS));
  const cpu0 = snapshot(pids);
  const result = await run(o.seconds, r.amount);
  const cpu = cpuBetween(cpu0, snapshot(pids));
  const p = (name: string): number => cpu.percent.get(name) ?? 0;
  const requests = result.requests.total;
  // the same route with a few connections, below what it answers saturated (the timeline: none)
  const pacedRun = r.amount
    ? null
    : await autocannon({ url, connections: o.lightConnections, duration: o.seconds, requests: r.requests });
  const paced = pacedRun && {
    connections: o.lightConnections,
    requestsPerSec: round(pacedRun.requests.total / pacedRun.duration),
    p50Ms: pacedRun.latency.p50,
    p99Ms: pacedRun.latency.p99,
  };
  const serveSeconds = cpu.seconds.get('serve');
  return {
    route: r.route,
    path: r.path,
    connections: r.connections,
    requests,
    seconds: round(result.duration, 1),
    requestsPerSec: round(requests / result.duration, requests / result.duration < 100 ? 1 : 0),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    paced,
    errors: result.errors,
    non2xx: result.non2xx,
    serveCpuUsPerRequest: requests > 0 && serveSeconds !== undefined ? round((serveSeconds * 1e6) / requests) : null,
    cpu: {
      serve: p('serve'),
      redis: round(redisTotal(cpu.percent) ?? 0, 1),
      ferretdb: p('ferretdb'),
      autocannon: p('autocannon'),
      machine: cpu.machineBusyPct,
    },
    bottleneck: bottleneck(cpu, [], false),
  };
}
