// The read API's JSON routes without a server: which path is which route (on /api/v1 and on its alias
// without /v1, under the name the OpenAPI document and the metrics give it), a 404 naming the routes, a
// bad pk refused before anything is read, and the top lists as readers get them: ranks shared by ties,
// a ratio only when both counts are known, one read per sort for every limit asked while it is fresh.
import t from 'tap';
import { ApiRoutes, HttpError, type ApiDeps } from '../../../lib/read/routes.js';
import { openApiDocument } from '../../../lib/read/openapi.js';
import { createLogger } from '../../../lib/shared/log.js';
import type { RedisClient } from '../../../lib/shared/redis.js';
import type { TimelineReader } from '../../../lib/storage/read/reader.js';
import type { Totals } from '../../../lib/storage/state/totals.js';
import type { TopEntry, TopOrder } from '../../../lib/storage/state/ranking.js';

/** A Redis or a reader that fails the test when anything of it is used. */
const untouchable = <T>(what: string): T =>
  new Proxy({} as object, {
    get: (_, key) => {
      throw new Error(`${what}.${String(key)} used`);
    },
  }) as T;

const deps: ApiDeps = {
  config: { cluster: 'routes-test', pkMin: 1, pkMax: 1000, corsOrigin: [] },
  redis: untouchable<RedisClient>('redis'),
  reader: untouchable<TimelineReader>('reader'),
  log: createLogger('silent'),
};

/** Totals whose top lists are `entries` (cut to the limit asked); each read is recorded. */
function fakeTotals(entries: Record<TopOrder, TopEntry[]>) {
  const reads: [TopOrder, number][] = [];
  const totals = {
    slices: 4,
    top: async (order: TopOrder, limit: number) => {
      reads.push([order, limit]);
      return entries[order].slice(0, limit);
    },
  } as unknown as Totals;
  return { totals, reads };
}

const entry = (pk: number, score: number, followerCount: number | null, followingCount: number | null): TopEntry => ({
  pk,
  score,
  username: `influencer-${pk}`,
  followerCount,
  followingCount,
  growth: null,
});

const url = (path: string) => new URL(`http://127.0.0.1${path}`);

t.test('each path is its route, on /api/v1 and on the alias without /v1, named as the document names it', async (t) => {
  const routes = new ApiRoutes(deps, fakeTotals({ followers: [], growth: [] }).totals);
  const documented = Object.keys(openApiDocument().paths);
  const cases: [string, string][] = [
    ['/influencers/42', '/api/v1/influencers/{pk}'],
    ['/influencers/42/timeline', '/api/v1/influencers/{pk}/timeline'],
    ['/influencers', '/api/v1/influencers'],
    ['/stats', '/api/v1/stats'],
    ['/cluster', '/api/v1/cluster'],
  ];
  for (const [rest, name] of cases) {
    t.equal(routes.match(url(`/api/v1${rest}`))?.name, name, `/api/v1${rest}`);
    t.equal(routes.match(url(`/api${rest}`))?.name, name, `/api${rest}`);
    t.ok(documented.includes(name), `${name} is in the OpenAPI document`);
  }
  t.equal(routes.match(url('/api/openapi.json'))?.name, '/api/openapi.json');
  t.same(await routes.dispatch(url('/api/openapi.json')), openApiDocument(), 'the document itself');
});

t.test('a path that is no route: no match, and a 404 that names the routes', async (t) => {
  const routes = new ApiRoutes(deps, fakeTotals({ followers: [], growth: [] }).totals);
  for (const path of ['/api/v2/stats', '/apistats', '/api/influencers/42/points', '/api/v1/', '/stats']) {
    t.equal(routes.match(url(path)), undefined, path);
  }
  t.throws(() => routes.dispatch(url('/api/v2/stats')), {
    status: 404,
    message: /^no route \/api\/v2\/stats: see .*\/api\/v1\/influencers\/\{pk\}\/timeline/,
  });
});

t.test('a pk outside the universe or not a number is a 400 before anything is read', async (t) => {
  const { totals, reads } = fakeTotals({ followers: [], growth: [] });
  const routes = new ApiRoutes(deps, totals);
  for (const path of ['/api/v1/influencers/0', '/api/influencers/1001', '/api/v1/influencers/abc/timeline']) {
    const error = await (async () => routes.dispatch(url(path)))().catch((err: unknown) => err);
    t.ok(error instanceof HttpError, `${path}: an HttpError`);
    t.equal((error as HttpError).status, 400, `${path}: 400`);
  }
  t.same(reads, [], 'no top list read');
});

t.test('top lists: ties share a rank by followers, growth is by position; a ratio needs both counts', async (t) => {
  const followers = [entry(1, 900, 900, 300), entry(2, 900, 900, 0), entry(3, 500, 500, null), entry(4, 100, 100, 8)];
  const growth = [entry(5, 30, 10, 5), entry(6, 30, 20, 5)];
  const routes = new ApiRoutes(deps, fakeTotals({ followers, growth }).totals);
  const top = (await routes.dispatch(url('/api/v1/influencers?limit=4'))) as {
    sort: string;
    limit: number;
    influencers: { rank: number; pk: number; followerRatio: number | null }[];
  };
  t.match(top, { sort: 'followers', limit: 4 });
  t.same(
    top.influencers.map((i) => [i.rank, i.pk, i.followerRatio]),
    [
      [1, 1, 3],
      [1, 2, null],
      [3, 3, null],
      [4, 4, 12.5],
    ],
    'equal counts share a rank, the next one counts the rows before it; no ratio without a following count above 0',
  );
  const byGrowth = (await routes.dispatch(url('/api/influencers?sort=growth&limit=2'))) as {
    influencers: Record<string, unknown>[];
  };
  t.same(
    byGrowth.influencers.map((i) => [i.position, i.pk, 'rank' in i]),
    [
      [1, 5, false],
      [2, 6, false],
    ],
    'growth: a position each, even for equal growth, and no rank',
  );
  await t.rejects(routes.dispatch(url('/api/v1/influencers?sort=likes')), { status: 400, message: /^sort="likes"/ });
});

t.test('one read per sort serves every smaller limit while it is fresh; a larger limit reads again', async (t) => {
  const many = Array.from({ length: 50 }, (_, i) => entry(i + 1, 1000 - i, 1000 - i, 10));
  const { totals, reads } = fakeTotals({ followers: many, growth: many });
  const routes = new ApiRoutes(deps, totals, 60_000);
  const sizes: number[] = [];
  for (const path of [
    '/api/v1/influencers?limit=10',
    '/api/v1/influencers?limit=5',
    '/api/influencers?limit=10',
    '/api/v1/influencers?limit=20',
    '/api/v1/influencers?sort=growth&limit=3',
  ]) {
    sizes.push(((await routes.dispatch(url(path))) as { influencers: unknown[] }).influencers.length);
  }
  t.same(sizes, [10, 5, 10, 20, 3], 'each answer holds the limit asked');
  t.same(
    reads,
    [
      ['followers', 10],
      ['followers', 20],
      ['growth', 3],
    ],
    'limits 5 and 10 again served by the first read',
  );
});
