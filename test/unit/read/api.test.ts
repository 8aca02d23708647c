// The read API (`influencer-node serve`): every route, each bad input, and the growth index.
import { memberIndexKey, nodeKey } from '../../../lib/shared/keys.js';
import t from 'tap';
import type { Redis } from 'ioredis';
import type { Db } from 'mongodb';
import { startApi, type ApiLimits, type ApiServer } from '../../../lib/read/api.js';
import { viewHash } from '../../../lib/cluster/card.js';
import { loadConfig } from '../../../lib/ops/config.js';
import { createLogger } from '../../../lib/shared/log.js';
import { connectMongo, createMongo } from '../../../lib/shared/mongo.js';
import { MAX_POINTS, ratio } from '../../../lib/read/influencer.js';
import { connectRedis, createRedis, servers } from '../../../lib/shared/redis.js';
import { readStatus } from '../../../lib/cluster/status.js';
import { loadLayout } from '../../../lib/storage/format/layout.js';
import type { PendingBatch } from '../../../lib/storage/write/log-writer.js';
import { TimelineReader } from '../../../lib/storage/read/reader.js';
import { collections, type Sample } from '../../../lib/storage/format/documents.js';
import { storeSuspicious } from '../../../lib/polling/suspicious.js';
import { Totals } from '../../../lib/storage/state/totals.js';
import { until } from '../../kit/wait.js';
import { services, type Services } from '../../kit/servers.js';
import { sampleStore, startTotals, takeRankings } from '../../helpers/storage.js';

const log = createLogger('silent');
const MIN = 60_000;
const HOUR = 3_600_000;

interface Setup {
  svc: Services;
  redis: Redis;
  totals: Totals;
  db: Db;
  write: (samples: Sample[]) => Promise<PendingBatch>;
  api: ApiServer;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers of every shape, read field by field
  get: (path: string) => Promise<{ status: number; headers: Headers; body: any }>;
  mongoCommands: string[];
}

/** The API over fresh servers, with `env` added to its settings and `limits` to its options. */
async function setup(
  t: Parameters<Parameters<typeof t.test>[1]>[0],
  env: Record<string, string> = {},
  limits: ApiLimits = {},
): Promise<Setup> {
  const svc = await services(t);
  const redis = createRedis(svc.redisTarget, log, 'api-test');
  await connectRedis(redis, svc.redisTarget, log);
  const mongo = createMongo(svc.mongoUrl);
  // every command the API sends to MongoDB, to show which routes read it
  const mongoCommands: string[] = [];
  mongo.monitorCommands = true;
  mongo.on('commandStarted', (e) => mongoCommands.push(e.commandName));
  const db = await connectMongo(mongo, svc.mongoUrl, svc.mongoDb, log);
  const config = loadConfig(
    {},
    { CLUSTER: svc.cluster, MONGO_DB: svc.mongoDb, PK_MIN: '1000000', PK_MAX: '1000999', ...env },
  );
  // a layout begun three days ago: the tests write history that old
  const layout = await loadLayout(db, config, Date.now() - 3 * 86_400_000);
  await startTotals(redis, db, layout, svc.cluster);
  const api = await startApi(
    { config, redis, reader: new TimelineReader(redis, db, layout, svc.cluster), log },
    // every answer reads the newest ranking snapshots: the tests take one after each write
    { host: '127.0.0.1', port: 0, rankingsRecheckMs: 0, ...limits },
  );
  t.teardown(async () => {
    await api.stop();
    redis.disconnect();
    await mongo.close();
  });
  const get = async (path: string) => {
    const res = await fetch(`${api.url}${path}`);
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, body };
  };
  const totals = new Totals(redis, svc.cluster, layout.slices);
  const store = sampleStore(db, totals, layout);
  // as the nodes' ranking job does once an interval
  const write = async (samples: Sample[]): Promise<PendingBatch> => {
    const batch = await store(samples);
    await takeRankings(redis, svc.cluster, totals);
    return batch;
  };
  return { svc, redis, db, totals, write, api, get, mongoCommands };
}

const s = (pk: number, at: number, followerCount: number, followingCount: number): Sample => ({
  pk,
  at,
  username: `influencer-${pk}`,
  followerCount,
  followingCount,
});

t.test('routes', async (t) => {
  const { svc, redis, db, totals, write, get, mongoCommands } = await setup(t);
  const now = Math.floor(Date.now() / MIN) * MIN;
  const A = 1_000_042;
  const B = 1_000_043;
  const C = 1_000_044;
  // C: five points in each of three hours two days ago, then one now (tied with A's latest count)
  const base = Math.floor((now - 2 * 86_400_000) / HOUR) * HOUR;
  const history: Sample[] = [];
  for (let h = 0; h < 3; h++)
    for (let m = 0; m < 5; m++) history.push(s(C, base + h * HOUR + m * MIN, 50_000 + h * 1000 + m * 10, 500 + m));
  await write([
    s(A, now - 2 * MIN, 100_000, 1000),
    s(A, now - MIN, 100_300, 1003),
    s(A, now, 100_600, 1000),
    s(B, now, 200_000, 10),
    ...history,
    s(C, now, 100_600, 400),
  ]);
  const checkedAt = new Date(now - 5000);
  await storeSuspicious({ answers: collections(db).answers, totals }, A, true, checkedAt.getTime(), 0);

  t.test('GET /api/influencers/:pk: latest figures, rank, growth, suspicious flag', async (t) => {
    mongoCommands.length = 0;
    const r = await get(`/api/influencers/${A}`);
    t.equal(r.status, 200);
    t.match(r.headers.get('content-type'), /^application\/json/);
    t.equal(r.headers.get('cache-control'), 'no-store');
    t.same(r.body, {
      pk: A,
      username: 'influencer-1000042',
      followerCount: 100_600,
      followingCount: 1000,
      followerRatio: 100.6,
      averageFollowers: 100_300,
      minFollowers: 100_000,
      maxFollowers: 100_600,
      samples: 3,
      lastUpdated: new Date(now).toISOString(),
      rank: 2,
      growth: 300,
      previousAt: new Date(now - MIN).toISOString(),
      suspicious: true,
      suspiciousAt: checkedAt.toISOString(),
      totals: 'ready',
    });
    const b = await get(`/api/influencers/${B}`);
    t.match(
      b.body,
      { rank: 1, growth: null, previousAt: null, suspicious: null, suspiciousAt: null },
      'one sample: no growth; never checked',
    );
    t.equal((await get(`/api/influencers/${C}`)).body.rank, 2, 'equal counts share a rank');
    // a page view is a few Redis lookups: on FerretDB even a MongoDB lookup by _id scans the collection
    t.same(mongoCommands, [], 'no MongoDB command for a page view');
    // hours before the pk's open buffer: closed periods, read from MongoDB's buckets
    const from = new Date(Date.now() - 6 * 3_600_000).toISOString();
    await get(`/api/influencers/${A}/timeline?from=${encodeURIComponent(from)}`);
    t.ok(mongoCommands.includes('find'), 'while the timeline is read from MongoDB');
  });

  t.test('GET /api/influencers/:pk/timeline: points for a day or less', async (t) => {
    const last = await get(`/api/influencers/${A}/timeline`);
    t.equal(last.status, 200);
    t.equal(last.headers.get('cache-control'), 'no-store');
    t.equal(last.body.resolution, 'interval');
    t.equal(last.body.stepMs, MIN, 'one point per interval');
    const point = (at: number, followerCount: number, followingCount: number) => ({
      at: new Date(at).toISOString(),
      followerCount,
      followingCount,
      followerRatio: ratio(followerCount, followingCount),
      // one interval holds one sample: the same shape as a bucket's point
      minFollowers: followerCount,
      maxFollowers: followerCount,
      meanFollowers: followerCount,
      samples: 1,
    });
    t.same(
      last.body.points,
      [point(now - 2 * MIN, 100_000, 1000), point(now - MIN, 100_300, 1003), point(now, 100_600, 1000)],
      'default: the last hour',
    );
    const iso = await get(
      `/api/influencers/${A}/timeline?from=${new Date(now - 90_000).toISOString()}&to=${new Date(now).toISOString()}`,
    );
    t.same(
      iso.body.points.map((p: { followerCount: number }) => p.followerCount),
      [100_300],
      'ISO from/to; to is exclusive',
    );
    const ms = await get(`/api/influencers/${A}/timeline?from=${now - 2 * MIN}&to=${now + 1}`);
    t.equal(ms.body.points.length, 3, 'epoch ms from/to');
    t.match(ms.body, { pk: A, from: new Date(now - 2 * MIN).toISOString(), to: new Date(now + 1).toISOString() });
    const exactlyADay = await get(`/api/influencers/${A}/timeline?from=${now - 86_400_000 + 1}&to=${now + 1}`);
    t.equal(exactlyADay.body.resolution, 'interval', 'a day is still one point per interval');
  });

  t.test('GET /api/influencers/:pk/timeline: hourly aggregates over a day', async (t) => {
    const r = await get(`/api/influencers/${C}/timeline?from=${base - HOUR}&to=${now + 1}`);
    t.equal(r.status, 200);
    t.equal(r.body.resolution, 'bucket');
    t.equal(r.body.bucketMs, HOUR);
    t.equal(r.body.points.length, 4, 'three hours of history and the hour of the latest point');
    t.same(
      r.body.points[0],
      {
        at: new Date(base).toISOString(),
        followerCount: 50_040,
        followingCount: 504,
        followerRatio: ratio(50_040, 504),
        minFollowers: 50_000,
        maxFollowers: 50_040,
        meanFollowers: 50_020,
        samples: 5,
      },
      'last counts and their ratio, min, max, mean, samples',
    );
    t.match(r.body.points[2], {
      at: new Date(base + 2 * HOUR).toISOString(),
      minFollowers: 52_000,
      maxFollowers: 52_040,
      meanFollowers: 52_020,
    });
    t.match(r.body.points[3], {
      at: new Date(Math.floor(now / HOUR) * HOUR).toISOString(),
      followerCount: 100_600,
      samples: 1,
    });
  });

  t.test('GET /api/influencers: top lists from the ranking snapshots', async (t) => {
    const byFollowers = await get('/api/influencers');
    t.equal(byFollowers.status, 200);
    t.equal(byFollowers.body.sort, 'followers');
    t.same(
      byFollowers.body.influencers.map((r: { pk: number; rank: number }) => [r.rank, r.pk]),
      [
        [1, B],
        [2, A],
        [2, C],
      ],
      'ties share a rank (and are listed by pk)',
    );
    t.match(byFollowers.body.influencers[0], {
      pk: B,
      username: 'influencer-1000043',
      followerCount: 200_000,
      followingCount: 10,
      followerRatio: 20_000,
      growth: null,
    });
    const growth = await get('/api/influencers?sort=growth&limit=5');
    t.same(
      growth.body.influencers.map((r: { pk: number; growth: number }) => [r.pk, r.growth]),
      [
        [C, 100_600 - 52_040],
        [A, 300],
      ],
      'by latest minus previous count; one sample is not ranked',
    );
    t.same(
      growth.body.influencers.map((r: { position: number }) => r.position),
      [1, 2],
    );
    t.equal((await get('/api/influencers?limit=1')).body.influencers.length, 1);
    t.equal((await get('/api/influencers?limit=1000')).status, 200);
  });

  t.test('GET /api/stats and /api/cluster', async (t) => {
    const stats = await get('/api/stats');
    t.ok(Math.abs(Date.parse(stats.body.rankedAt) - Date.now()) < 60_000, 'the ranking snapshots it is as of');
    t.same(stats.body, {
      rankedAt: stats.body.rankedAt,
      cluster: svc.cluster,
      influencers: 3,
      averageFollowers: Math.round(((200_000 + 100_600 + 100_600) / 3) * 100) / 100,
      totals: 'ready',
      universe: { pkMin: 1_000_000, pkMax: 1_000_999, size: 1000 },
    });
    const empty = await get('/api/cluster');
    t.equal(empty.status, 200);
    t.same(empty.body.members, [], 'no node running');
    const at = Date.now();
    const card = {
      format: 1,
      id: 'n1',
      host: 'vm',
      pid: 1,
      version: '0.1.0',
      weight: 1,
      state: 'active',
      started: at - 60_000,
      heartbeat: at,
      ttlMs: 10_000,
      view: viewHash([{ id: 'n1', weight: 1 }]),
      stats: { owned: 1000, onTimePct: 99.5 },
    };
    // as a node does: its card, and its id in the member index
    await redis.set(nodeKey(svc.cluster, 'n1'), JSON.stringify(card), 'PX', 60_000);
    await redis.sadd(memberIndexKey(svc.cluster), 'n1');
    // one read of the cluster serves every request for a second
    let one = await get('/api/cluster');
    await until(async () => (one = await get('/api/cluster')).body.members.length === 1, 10_000, 'the new member');
    const direct = await readStatus(
      redis,
      loadConfig({}, { CLUSTER: svc.cluster, PK_MIN: '1000000', PK_MAX: '1000999' }),
    );
    // the same data as status --json, but for the clock-dependent fields
    const timeless = (x: unknown): unknown =>
      JSON.parse(JSON.stringify(x, (k, v) => (['at', 'uptimeS', 'heartbeatAgeS'].includes(k) ? undefined : v)));
    t.same(timeless(one.body), timeless(direct), 'the data of status --json');
    t.match(one.body.members[0], { id: 'n1', state: 'active', healthy: true, sharePct: 100, stats: { owned: 1000 } });
  });

  t.test('bad input: 400 with a one-line JSON error', async (t) => {
    const cases: Array<[string, RegExp]> = [
      ['/api/influencers/abc', /^pk "abc" is not valid: expected an integer from 1000000 to 1000999$/],
      ['/api/influencers/12', /^pk "12" is not valid/],
      ['/api/influencers/1001000', /^pk "1001000" is not valid/],
      ['/api/influencers/99999999999999999999', /is not valid/],
      ['/api/influencers/1000042.5', /is not valid/],
      ['/api/influencers/-1000042', /is not valid/],
      ['/api/influencers/%E0%A4%A', /is not valid/],
      ['/api/influencers/abc/timeline', /^pk "abc" is not valid/],
      [`/api/influencers/${A}/timeline?from=yesterday`, /^from="yesterday" is not valid: expected an ISO time/],
      [`/api/influencers/${A}/timeline?to=2026-13-45T99:00Z`, /^to="2026-13-45T99:00Z" is not valid/],
      [`/api/influencers/${A}/timeline?from=`, /^from="" is not valid/],
      [
        `/api/influencers/${A}/timeline?from=2026-01-02T00:00Z&to=2026-01-01T00:00Z`,
        /^from is after to: 2026-01-02T00:00:00.000Z > 2026-01-01T00:00:00.000Z$/,
      ],
      [
        `/api/influencers/${A}/timeline?from=2026-01-01T00:00Z&to=2026-03-01T00:00Z`,
        /^range of 59 days is too long: at most 31 days$/,
      ],
      [
        `/api/influencers/${A}/timeline?to=99999999999999999`,
        /^to="99999999999999999" is not valid: expected a time from/,
      ],
      [
        `/api/influencers/${A}/timeline?from=8640000000000000&to=8640000000000001`,
        /^to="8640000000000001" is not valid/,
      ],
      ['/api/influencers?limit=1001', /^limit="1001" is not valid: expected an integer from 1 to 1000$/],
      ['/api/influencers?limit=0', /^limit="0" is not valid/],
      ['/api/influencers?limit=ten', /^limit="ten" is not valid/],
      ['/api/influencers?limit=5.5', /^limit="5.5" is not valid/],
      ['/api/influencers?sort=likes', /^sort="likes" is not valid: expected followers or growth$/],
    ];
    for (const [path, message] of cases) {
      const r = await get(path);
      t.equal(r.status, 400, path);
      t.match(r.body.error, message, path);
      t.same(Object.keys(r.body), ['error'], `${path}: only an error`);
    }
  });

  t.test('unknown pk, unknown route, other methods', async (t) => {
    const none = await get('/api/influencers/1000500');
    t.equal(none.status, 404);
    t.same(none.body, { error: 'pk 1000500 has no data yet (no node has stored a sample for it)' });
    t.equal((await get('/api/influencers/1000500/timeline')).status, 404);
    for (const path of ['/api/nope', '/api/influencers/1000042/points', '/api/influencers/', '/favicon.ico']) {
      const r = await get(path);
      t.equal(r.status, 404, path);
      t.match(r.body.error, /^no route /, path);
    }
  });
});

t.test('dashboard files and uPlot are served locally', async (t) => {
  const { api, get } = await setup(t);
  const page = await get('/');
  t.equal(page.status, 200);
  t.match(page.headers.get('content-type'), /^text\/html/);
  t.match(page.body, /<script src="\/vendor\/uPlot.iife.min.js">/);
  t.notMatch(page.body, /https?:\/\//, 'no CDN');
  for (const [path, type] of [
    ['/app.js', /javascript/],
    ['/style.css', /text\/css/],
    ['/vendor/uPlot.iife.min.js', /javascript/],
    ['/vendor/uPlot.min.css', /text\/css/],
  ] as const) {
    const r = await get(path);
    t.equal(r.status, 200, path);
    t.match(r.headers.get('content-type'), type, path);
  }
  const post = await fetch(`${api.url}/api/stats`, { method: 'POST' });
  t.equal(post.status, 405);
  t.equal(post.headers.get('allow'), 'GET, HEAD');
  t.match(await post.json(), { error: /read-only/ });
});

t.test('Redis down: 503 with a JSON error, not a crash', async (t) => {
  const svc = await services(t);
  const redis = createRedis('redis://127.0.0.1:1', log, 'down', { retryStrategy: () => null });
  redis.on('error', () => undefined);
  const mongo = createMongo(svc.mongoUrl);
  const db = await connectMongo(mongo, svc.mongoUrl, svc.mongoDb, log);
  const config = loadConfig({}, { CLUSTER: svc.cluster });
  const api = await startApi(
    { config, redis, reader: new TimelineReader(redis, db, await loadLayout(db, config), svc.cluster), log },
    { host: '127.0.0.1', port: 0 },
  );
  t.teardown(async () => {
    await api.stop();
    redis.disconnect();
    await mongo.close();
  });
  const r = await fetch(`${api.url}/api/stats`);
  t.equal(r.status, 503);
  t.match(await r.json(), { error: /^storage unavailable: / });
  t.equal((await fetch(`${api.url}/api/influencers/abc`)).status, 400, 'input is still checked first');
});

t.test('growth: latest minus previous count, replay-safe, late samples ignored', async (t) => {
  const { totals, write, get } = await setup(t);
  const D = 1_000_100;
  const T = Math.floor(Date.now() / HOUR) * HOUR;
  const growthOf = async (): Promise<number[]> =>
    (await get('/api/influencers?sort=growth')).body.influencers.map((r: { growth: number }) => r.growth);
  await write([s(D, T + 10 * MIN, 1000, 10)]);
  t.same(await growthOf(), [], 'one sample: not in the growth list');
  await write([s(D, T + 11 * MIN, 1500, 10)]);
  t.same(await growthOf(), [500]);
  await write([s(D, T + 11 * MIN, 9999, 10)]);
  t.same(await growthOf(), [500], 'a repeat of an interval changes nothing');
  await write([s(D, T + 9 * MIN, 9000, 10)]);
  t.same(await growthOf(), [500], 'an older sample arriving late changes nothing');
  await write([s(D, T + 12 * MIN, 1200, 10)]);
  t.match(await totals.read(D), { followerCount: 1200, previousFollowerCount: 1500, previousAt: T + 11 * MIN });
  t.same(await growthOf(), [-300], 'a loss is negative growth');
});

t.test('read bounds: top lists shared per sort, a cap on requests at once, timelines of bounded size', async (t) => {
  const limits = { maxInFlight: 2, maxQueued: 1, rankingsRecheckMs: 1000 };
  const { redis, totals, write, get, api } = await setup(t, { INTERVAL_MS: '1000' }, limits);
  const now = Math.floor(Date.now() / HOUR) * HOUR;
  const A = 1_000_042;
  const samples: Sample[] = [];
  for (let pk = 1_000_000; pk < 1_000_060; pk++) samples.push(s(pk, now - 2 * 86_400_000, 1000 + (pk % 100), 10));
  // A: a point every ten minutes over the last two days
  for (let at = now - 2 * 86_400_000; at <= now; at += 10 * MIN) samples.push(s(A, at, 5000 + ((at / MIN) % 100), 100));
  await write(samples);

  t.test('top lists: one read per sort serves every limit asked within a second', async (t) => {
    const stats = async (): Promise<string> => redis.info('commandstats');
    // a read of the top lists asks each slice whether its ranking snapshot changed
    const calls = async (): Promise<number> =>
      Number(/cmdstat_getrange:calls=(\d+)/.exec(await stats())?.[1] ?? 0) / totals.slices;
    const before = await calls();
    const lists: number[][] = [];
    for (let limit = 50; limit >= 1; limit--) {
      const r = await get(`/api/influencers?limit=${limit}`);
      lists.push(r.body.influencers.map((x: { pk: number }) => x.pk));
    }
    const reads = (await calls()) - before;
    t.ok(reads <= 5, `${reads} reads of the followers list for 50 limits (one per second at most, not one per limit)`);
    t.same(lists[49], lists[0].slice(0, 1), 'a smaller limit is the head of the larger list');
    t.equal(lists[0].length, 50);
  });

  t.test("more requests at once than the cap: the queue's worth wait, the rest get 503 with Retry-After", async (t) => {
    // every read of the API hangs until then (on a Redis Cluster: every master)
    await Promise.all(servers(redis).map((server) => server.call('CLIENT', 'PAUSE', '1500', 'ALL')));
    const answers = await Promise.all(Array.from({ length: 6 }, () => fetch(`${api.url}/api/influencers/${A}`)));
    const codes = answers.map((r) => r.status).sort();
    t.same(codes, [200, 200, 200, 503, 503, 503], '2 running + 1 queued answered, 3 refused');
    const refused = answers.find((r) => r.status === 503)!;
    t.equal(refused.headers.get('retry-after'), '1');
    t.match(await refused.json(), { error: /^too many requests at once/ });
    t.equal((await get(`/api/influencers/${A}`)).status, 200, 'and answered again once they are done');
  });

  t.test('timelines: at most MAX_POINTS points one per interval; longer ranges one per bucket', async (t) => {
    const hours = Math.floor(MAX_POINTS / 3600);
    const interval = await get(`/api/influencers/${A}/timeline?from=${now - hours * HOUR}&to=${now}`);
    t.equal(
      interval.body.resolution,
      'interval',
      `${hours} h at INTERVAL_MS=1000 is ≤ ${MAX_POINTS} points: one per interval`,
    );
    const day = await get(`/api/influencers/${A}/timeline?from=${now - 86_400_000}&to=${now}`);
    t.equal(
      day.body.resolution,
      'bucket',
      'a day at INTERVAL_MS=1000 (86,400 intervals) is answered per bucket (an hour)',
    );
    t.equal(day.body.points.length, 24);
    const two = await get(`/api/influencers/${A}/timeline?from=${now - 2 * 86_400_000 + 30 * MIN}&to=${now}`);
    t.equal(two.body.points.length, 48, 'two days (the first hour in part): 48 hours');
    t.same(
      two.body.points.map((p: { samples: number }) => p.samples),
      [3, ...Array(47).fill(6)],
      'every point once, in its hour',
    );
    const second = Array.from(
      { length: 6 },
      (_, i) => 5000 + (((now - 2 * 86_400_000 + HOUR + i * 10 * MIN) / MIN) % 100),
    );
    t.match(
      two.body.points[1],
      { minFollowers: Math.min(...second), maxFollowers: Math.max(...second) },
      'aggregated as before',
    );
  });
});
