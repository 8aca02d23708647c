// The daily is_suspicious check: the request forms, what is stored, what is counted, its bounds,
// and that slow answers never cost the per-interval polling a sample.
import t from 'tap';
import type { Db } from 'mongodb';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger } from '../../../lib/shared/log.js';
import { answerPeriods, collections, type SuspiciousDoc } from '../../../lib/storage/format/documents.js';
import { storeSuspicious, SuspiciousChecker, type SuspiciousStats } from '../../../lib/polling/suspicious.js';
import type { InfluencerTotals } from '../../../lib/storage/state/totals.js';
import { checkStore, range, startCluster, PK_MIN } from '../../helpers/cluster.js';
import { intervalStart, sleep, until } from '../../kit/wait.js';
import { connected } from '../../kit/servers.js';
import { MockstagramClient } from '../../../lib/polling/source.js';

const log = createLogger('silent');

interface Seen {
  method: string;
  url: string;
  body: string;
  authorization?: string;
}

/** A Mockstagram stand-in that records each is_suspicious request and answers after `delayMs`. */
async function recordingServer(
  t: Parameters<Parameters<typeof t.test>[1]>[0],
  delayMs: number,
  answer: (pk: number) => [number, string],
) {
  const seen: Seen[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', body, authorization: req.headers.authorization });
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      const pk =
        req.method === 'POST'
          ? (JSON.parse(body) as { pk: number }).pk
          : Number(/\/(\d+)\/is_suspicious$/.exec(req.url ?? '')?.[1]);
      const timer = setTimeout(() => {
        timers.delete(timer);
        inFlight--;
        const [status, text] = answer(pk);
        res.writeHead(status, { 'Content-Type': 'application/json' }).end(text);
      }, delayMs);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const timer of timers) clearTimeout(timer);
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, maxInFlight: () => maxInFlight };
}

const totalsOf = (pk: number): InfluencerTotals => ({
  samples: 3,
  followerSum: 30_000,
  followerMin: 9000,
  followerMax: 11_000,
  latestAt: 0,
  followerCount: 10_000 + (pk % 100),
  followingCount: 2000,
  username: `influencer-${pk}`,
  previousFollowerCount: null,
  previousAt: null,
  suspicious: null,
  suspiciousAt: null,
});

/** The answers of a database: one collection per check period, and every one of them, oldest period first. */
function answersIn(db: Db) {
  const { answers } = collections(db);
  return Object.assign(answers, {
    all: async (): Promise<SuspiciousDoc[][]> =>
      Promise.all((await answerPeriods(db)).reverse().map((p) => answers(p).find({}).sort({ _id: 1 }).toArray())),
  });
}

async function answersOf(t: Parameters<Parameters<typeof t.test>[1]>[0]) {
  return answersIn((await connected(t, 'suspicious-test')).db);
}

/** Each pk's latest stored answer. */
async function latestAnswers(answers: {
  all: () => Promise<SuspiciousDoc[][]>;
}): Promise<Map<number, { suspicious: boolean; at: number }>> {
  const latest = new Map<number, { suspicious: boolean; at: number }>();
  for (const period of await answers.all())
    for (const d of period) latest.set(d.pk, { suspicious: d.suspicious, at: d.at.getTime() });
  return latest;
}

/** Totals that answer totalsOf(pk) (null for `noData`) and keep the flags stored next to them. */
function fakeTotals(noData?: number) {
  const flags = new Map<number, { suspicious: boolean; at: number }>();
  return {
    flags,
    read: async (pk: number) => (pk === noData ? null : totalsOf(pk)),
    setSuspicious: async (pk: number, suspicious: boolean, at: number) => {
      flags.set(pk, { suspicious, at });
    },
  };
}

/** n pks spread evenly over the period (the checker only uses the hashes for timing). */
function owned(pks: number[]) {
  const hashes = new Uint32Array(pks.map((_, i) => Math.floor(((i + 0.5) / pks.length) * 2 ** 32)));
  return { pks: Int32Array.from(pks), hashes };
}

t.test('each owned pk is checked and its flag stored; failures are counted, not stored', async (t) => {
  const pks = range(PK_MIN, 12);
  const NO_DATA = PK_MIN + 8;
  const NOT_FOUND = PK_MIN + 9;
  const FAILING = PK_MIN + 10;
  const MALFORMED = PK_MIN + 11;
  const totals = fakeTotals(NO_DATA);
  const answers = await answersOf(t);
  const mock = await recordingServer(t, 100, (pk) => {
    if (pk === NOT_FOUND) return [400, '{"error":{"name":"InfluencerNotFoundError"}}'];
    if (pk === FAILING) return [503, '{"error":{"name":"ServiceUnavailable"}}'];
    if (pk === MALFORMED) return [200, '{"pk":'];
    return [200, JSON.stringify({ pk, suspicious: pk % 2 === 0 })];
  });
  const checker = new SuspiciousChecker(
    {
      mockstagramUrl: mock.url,
      intervalMs: 1000,
      concurrency: 2,
      timeoutMs: 5000,
      post: false,
      retryMs: 50,
      maxTries: 3,
    },
    { owned: () => owned(pks), answers, totals, log },
  );
  const started = Date.now();
  checker.start();
  t.teardown(() => checker.stop());
  await until(async () => (await latestAnswers(answers)).size === 8, 30_000, 'eight pks flagged');
  await until(
    () => {
      const s = checker.stats();
      return (s.errors.http_5xx ?? 0) >= 3 && (s.errors.malformed_json ?? 0) >= 3 && s.notFound >= 1 && s.noData >= 3;
    },
    30_000,
    'every failure counted',
  );
  await checker.stop();
  const periods = Math.ceil((Date.now() - started) / 1000) + 1;
  const latest = await latestAnswers(answers);
  for (const pk of pks.filter((pk) => pk < NO_DATA)) {
    t.equal(latest.get(pk)?.suspicious, pk % 2 === 0, `pk ${pk}: the answer is stored`);
    t.ok((latest.get(pk)?.at ?? 0) >= started - 1000, `pk ${pk}: with the time of the check`);
    t.same(totals.flags.get(pk), latest.get(pk), `pk ${pk}: the same answer next to its totals`);
  }
  t.same(
    [...totals.flags.keys()].filter((pk) => pk >= NO_DATA),
    [],
    'nothing next to the totals of the others',
  );
  t.same(
    [...latest.keys()].filter((pk) => pk >= NO_DATA),
    [],
    'no answer stored for a pk without data, not-found, failed or malformed answers',
  );
  const twice = (await answers.all()).filter((docs) => new Set(docs.map((d) => d.pk)).size !== docs.length);
  t.same(twice, [], 'one document per pk and period, each period in its own collection');
  const s: SuspiciousStats = checker.stats();
  t.ok(s.checked >= 8, `${s.checked} checks stored`);
  t.equal(s.flagged > 0, true, 'flagged ones counted');
  t.ok(mock.maxInFlight() <= 2, `never more than the concurrency in flight (${mock.maxInFlight()})`);
  t.ok(
    mock.seen.every((r) => r.method === 'GET' && /^\/api\/v1\/influencers\/\d+\/is_suspicious$/.test(r.url)),
    'GET /api/v1/influencers/:pk/is_suspicious',
  );
  t.notOk(
    mock.seen.some((r) => r.url.includes(String(NO_DATA))),
    'a pk without data is not asked about',
  );
  const failingTries = mock.seen.filter((r) => r.url.includes(String(FAILING))).length;
  t.ok(
    failingTries >= 3 && failingTries <= 3 * periods,
    `a failing pk is tried at most maxTries times per period (${failingTries} in ${periods} periods)`,
  );
  t.equal(s.inFlight, 0);
});

t.test('a second answer in a period keeps the first, in MongoDB and next to the totals', async (t) => {
  const answers = await answersOf(t);
  const totals = fakeTotals();
  await storeSuspicious({ answers, totals }, PK_MIN, true, 1000, 0);
  // another try in the same period (a retry, or a node that took the pk over) hears otherwise
  await storeSuspicious({ answers, totals }, PK_MIN, false, 2000, 0);
  t.same((await latestAnswers(answers)).get(PK_MIN), { suspicious: true, at: 1000 }, 'MongoDB keeps the first');
  t.same(totals.flags.get(PK_MIN), { suspicious: true, at: 1000 }, 'and so does its copy next to the totals');
  // the copy failed after the insert: the retry copies what MongoDB kept
  let fail = true;
  const flaky = {
    ...totals,
    setSuspicious: async (pk: number, suspicious: boolean, at: number) => {
      if (fail) {
        fail = false;
        throw new Error('Redis down');
      }
      await totals.setSuspicious(pk, suspicious, at);
    },
  };
  await t.rejects(storeSuspicious({ answers, totals: flaky }, PK_MIN + 1, true, 3000, 0), /Redis down/);
  await storeSuspicious({ answers, totals: flaky }, PK_MIN + 1, false, 4000, 0);
  t.same(totals.flags.get(PK_MIN + 1), { suspicious: true, at: 3000 }, 'a retry copies the stored answer');
});

t.test('an is_suspicious answer far larger than one is refused unread', async (t) => {
  const answers = await answersOf(t);
  const totals = fakeTotals();
  const mock = await recordingServer(t, 0, (pk) =>
    pk === PK_MIN
      ? [200, JSON.stringify({ pk, suspicious: true, padding: 'x'.repeat(1_000_000) })]
      : [503, JSON.stringify({ error: { name: 'x'.repeat(1_000_000) } })],
  );
  const checker = new SuspiciousChecker(
    {
      mockstagramUrl: mock.url,
      intervalMs: 1000,
      concurrency: 2,
      timeoutMs: 5000,
      post: false,
      retryMs: 50,
      maxTries: 2,
    },
    { owned: () => owned([PK_MIN, PK_MIN + 1]), answers, totals, log },
  );
  checker.start();
  t.teardown(() => checker.stop());
  await until(
    () => (checker.stats().errors.invalid_payload ?? 0) >= 1 && (checker.stats().errors.http_5xx ?? 0) >= 1,
    30_000,
    'both answered',
  );
  await checker.stop();
  t.equal(checker.stats().checked, 0, 'nothing checked');
  t.same([...(await latestAnswers(answers)).keys()], [], 'nothing stored');
  t.same([...totals.flags.keys()], [], 'nothing next to the totals');
});

t.test('an is_suspicious answer that redirects or trickles in is an error, never stored', async (t) => {
  const answers = await answersOf(t);
  const totals = fakeTotals();
  const REDIRECT = PK_MIN;
  let followed = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    res.on('error', () => undefined);
    const pk = Number(/\/(\d+)\/is_suspicious$/.exec(req.url ?? '')?.[1]);
    if (req.url?.startsWith('/elsewhere')) {
      followed++;
      return void res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ pk, suspicious: true }));
    }
    if (pk === REDIRECT) return void res.writeHead(302, { location: `/elsewhere${req.url}` }).end();
    // a valid answer, one byte a second: never idle long, never done within the timeout
    const body = Buffer.from(JSON.stringify({ pk, suspicious: true }));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    let i = 0;
    const drip = (): void => {
      if (res.destroyed) return;
      res.write(body.subarray(i, ++i));
      if (i < body.length) timers.add(setTimeout(drip, 1000));
      else res.end();
    };
    drip();
  });
  server.on('connection', (socket) => socket.on('error', () => undefined));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const timer of timers) clearTimeout(timer);
    server.closeAllConnections();
    server.close();
  });
  const checker = new SuspiciousChecker(
    {
      mockstagramUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      intervalMs: 2000,
      concurrency: 2,
      timeoutMs: 1500,
      post: false,
      retryMs: 60_000,
      maxTries: 1,
    },
    { owned: () => owned([PK_MIN, PK_MIN + 1]), answers, totals, log },
  );
  checker.start();
  t.teardown(() => checker.stop());
  await until(
    () => (checker.stats().errors.http_other ?? 0) >= 1 && (checker.stats().errors.timeout ?? 0) >= 1,
    20_000,
    'the redirect and the trickle counted',
  );
  await checker.stop();
  t.equal(followed, 0, 'the redirect is not followed');
  t.same([...totals.flags.keys()], [], 'nothing next to the totals');
  t.same([...(await latestAnswers(answers)).keys()], [], 'nothing stored');
});

t.test('SUSPICIOUS_POST: the older POST form with the latest counts as body', async (t) => {
  const pks = range(PK_MIN, 4);
  const answers = await answersOf(t);
  const mock = await recordingServer(t, 0, (pk) => [200, JSON.stringify({ pk, suspicious: true })]);
  const checker = new SuspiciousChecker(
    { mockstagramUrl: `${mock.url}/`, intervalMs: 500, concurrency: 4, timeoutMs: 5000, post: true },
    { owned: () => owned(pks), answers, totals: fakeTotals(), log },
  );
  checker.start();
  t.teardown(() => checker.stop());
  await until(
    async () => [...(await latestAnswers(answers)).values()].filter((a) => a.suspicious).length === 4,
    30_000,
    'four pks flagged',
  );
  await checker.stop();
  t.ok(
    mock.seen.every((r) => r.method === 'POST' && r.url === '/api/v1/influencers/is_suspicious'),
    'POST /api/v1/influencers/is_suspicious',
  );
  const bodies = new Map(
    mock.seen.map((r) => {
      const b = JSON.parse(r.body);
      return [b.pk, b];
    }),
  );
  t.same(
    bodies.get(PK_MIN + 3),
    { pk: PK_MIN + 3, username: `influencer-${PK_MIN + 3}`, followerCount: 10_003, followingCount: 2000 },
    'the body is the influencer from its latest totals',
  );
});

t.test(
  'a checker started mid-period skips the slots already past: no burst at start, then each pk at its slot',
  async (t) => {
    const pks = range(PK_MIN, 100);
    const answers = await answersOf(t);
    const mock = await recordingServer(t, 0, (pk) => [200, JSON.stringify({ pk, suspicious: false })]);
    const PERIOD = 86_400_000;
    const periodStart = Math.floor(Date.now() / PERIOD) * PERIOD;
    // a clock the test moves: 60 % into the day at start
    let now = periodStart + 0.6 * PERIOD;
    const checker = new SuspiciousChecker(
      { mockstagramUrl: mock.url, intervalMs: PERIOD, concurrency: 4, timeoutMs: 5000, post: false, now: () => now },
      { owned: () => owned(pks), answers, totals: fakeTotals(), log },
    );
    checker.start();
    t.teardown(() => checker.stop());
    await sleep(1500);
    t.equal(mock.seen.length, 0, 'the 60 pks whose slots passed before the start are not asked at once');
    now = periodStart + 0.7 * PERIOD;
    await until(() => mock.seen.length >= 10, 10_000, 'the pks due between 60 % and 70 % of the day');
    await sleep(1500);
    const asked = mock.seen.map((r) => Number(/\/(\d+)\/is_suspicious$/.exec(r.url)?.[1])).sort((a, b) => a - b);
    t.same(asked, range(PK_MIN + 60, 10), 'exactly the ten pks whose slots came, once each');
    t.equal(checker.stats().missed, 0);
  },
);

t.test('a check still running is not started again; stop() aborts what is in flight', async (t) => {
  const answers = await answersOf(t);
  const mock = await recordingServer(t, 60_000, (pk) => [200, JSON.stringify({ pk, suspicious: false })]);
  const checker = new SuspiciousChecker(
    { mockstagramUrl: mock.url, intervalMs: 200, concurrency: 4, timeoutMs: 120_000, post: false },
    { owned: () => owned([PK_MIN]), answers, totals: fakeTotals(), log },
  );
  checker.start();
  await until(() => checker.stats().skippedBusy >= 2, 30_000, 'the pk due again while its check hangs');
  t.equal(mock.seen.length, 1, 'one request, not one per period');
  t.equal(checker.stats().inFlight, 1);
  await checker.stop();
  t.equal(checker.stats().inFlight, 0, 'stop() returns once the hanging request is aborted');
  t.same(checker.stats().errors, {}, 'an abort is not an error');
});

t.test('a node checks its pks (GET form, mock answering at once) and reports it in its stats', async (t) => {
  const c = await startCluster(t, {
    pks: 40,
    intervalMs: 2000,
    ttlMs: 1500,
    extraEnv: { SUSPICIOUS_INTERVAL_MS: '2000' },
  });
  const node = await c.startNode('s1');
  const suspicious = answersIn(c.db);
  await until(async () => (await latestAnswers(suspicious)).size === 40, 60_000, 'every pk flagged');
  const docs = (await suspicious.all()).flat();
  t.ok(
    docs.every(
      (d) =>
        typeof d.suspicious === 'boolean' && d.at instanceof Date && d._id.startsWith(String(d.pk).padStart(10, '0')),
    ),
    'an answer and its time in every document',
  );
  const stats = node.stats().suspicious as SuspiciousStats;
  t.ok(stats.checked >= 40, `${stats.checked} checks in the node's stats`);
  t.same(stats.errors, {});
  await until(
    async () =>
      (JSON.parse((await c.redis.get(`${c.svc.cluster}:node:s1`)) ?? '{}').stats?.suspicious?.checked ?? 0) > 0,
    10_000,
    'the member card carries the counters',
  );
  t.pass('the member card (and so status --json) carries the counters');
  await node.stop();
  const stored = await latestAnswers(suspicious);
  const copies = await Promise.all([...stored.keys()].map(async (pk) => (await c.totals.read(pk))!));
  t.same(
    copies.map((x) => ({ suspicious: x.suspicious, at: x.suspiciousAt })),
    [...stored.values()],
    'the latest answers next to the totals, which the page reads',
  );
});

t.test('SUSPICIOUS_POST=true: a node uses the POST form', async (t) => {
  const c = await startCluster(t, {
    pks: 20,
    intervalMs: 2000,
    ttlMs: 1500,
    extraEnv: { SUSPICIOUS_INTERVAL_MS: '2000', SUSPICIOUS_POST: 'true' },
  });
  const node = await c.startNode('p1');
  await until(async () => (await latestAnswers(answersIn(c.db))).size === 20, 60_000, 'every pk flagged');
  t.same((node.stats().suspicious as SuspiciousStats).errors, {});
});

t.test('slow is_suspicious answers (~1 s) do not cost the polling a sample', async (t) => {
  const PKS = 300;
  const INTERVAL = 2000;
  const c = await startCluster(t, {
    pks: PKS,
    intervalMs: INTERVAL,
    ttlMs: 1500,
    mock: { suspiciousDelayScale: 1 },
    extraEnv: { SUSPICIOUS_INTERVAL_MS: String(INTERVAL), SUSPICIOUS_CONCURRENCY: '4' },
  });
  const node = await c.startNode('slow');
  await until(() => Number(node.stats().owned) === PKS, 30_000, 'the node owns every pk');
  const from = intervalStart(Date.now(), INTERVAL) + INTERVAL;
  let maxInFlight = 0;
  const end = Date.now() + 5 * INTERVAL;
  while (Date.now() < end) {
    maxInFlight = Math.max(maxInFlight, (node.stats().suspicious as SuspiciousStats).inFlight);
    await sleep(100);
  }
  const to = intervalStart(Date.now(), INTERVAL) - INTERVAL;
  await sleep(INTERVAL); // the last interval of the window is written
  const stats = node.stats().suspicious as SuspiciousStats;
  t.ok(stats.checked > 0, `${stats.checked} slow checks done meanwhile`);
  t.ok(maxInFlight <= 4, `at most SUSPICIOUS_CONCURRENCY checks in flight (${maxInFlight})`);
  t.ok(stats.missed > 0, 'pks the small concurrency could not reach are counted as missed, not queued');
  const check = await checkStore(c, range(PK_MIN, PKS), INTERVAL, from, to);
  t.ok((to - from) / INTERVAL >= 3, `window of ${(to - from) / INTERVAL} intervals`);
  t.same(check.gaps.slice(0, 10), [], `every pk has its sample in every interval (${check.gaps.length} missing)`);
});

t.test('credentials in MOCKSTAGRAM_URL are sent as basic auth, by the check and by the polling', async (t) => {
  // the check's path ends in /is_suspicious; the polling's is /api/v1/influencers/:pk (answered as an influencer)
  const mock = await recordingServer(t, 0, (pk) =>
    Number.isNaN(pk)
      ? [200, JSON.stringify({ pk: PK_MIN, username: 'someone', followerCount: 5000, followingCount: 60 })]
      : [200, JSON.stringify({ pk, suspicious: true })],
  );
  const url = mock.url.replace('http://', 'http://user:p%40ss@');
  const answers = await answersOf(t);
  const checker = new SuspiciousChecker(
    { mockstagramUrl: url, intervalMs: 1000, concurrency: 1, timeoutMs: 5000, post: false, retryMs: 50, maxTries: 3 },
    { owned: () => owned([PK_MIN]), answers, totals: fakeTotals(), log },
  );
  checker.start();
  t.teardown(() => checker.stop());
  await until(async () => (await latestAnswers(answers)).size === 1, 30_000, 'the pk checked');
  await checker.stop();
  const client = new MockstagramClient(url, { connections: 1, timeoutMs: 2000 });
  const r = await client.fetch(PK_MIN, Date.now() + 5000);
  await client.stop();
  t.equal(r.kind, 'ok', 'the polling fetched through the credentials');
  const expected = `Basic ${Buffer.from('user:p@ss').toString('base64')}`;
  t.ok(
    mock.seen.some((x) => x.url.endsWith('/is_suspicious')) && mock.seen.some((x) => !x.url.endsWith('/is_suspicious')),
    'both clients asked',
  );
  t.same(
    mock.seen.filter((x) => x.authorization !== expected).map((x) => x.url),
    [],
    'every request carried the credentials as basic auth',
  );
});
