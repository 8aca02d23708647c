import t from 'tap';
import { request } from 'node:http';
import { startMock, DEFAULT_MOCK_OPTIONS, type MockOptions, type MockServer } from '../../../lib/mock/mockstagram.js';
import { sleep } from '../../kit/wait.js';

const PK = 1_000_000;
const NOT_FOUND = '{"error":{"name":"InfluencerNotFoundError"}}';

interface Reply {
  status: number;
  body: string;
  retryAfter: string | null;
}

async function get(base: string, path: string, init: RequestInit = {}): Promise<Reply> {
  const res = await fetch(base + path, init);
  return { status: res.status, body: await res.text(), retryAfter: res.headers.get('retry-after') };
}

async function mock(t: { teardown(fn: () => unknown): void }, options: Partial<MockOptions>): Promise<MockServer> {
  const m = await startMock({ port: 0, suspiciousDelayScale: 0, ...options });
  t.teardown(() => m.close());
  return m;
}

/** The client-side check the product applies: null when the payload is a usable influencer. */
function invalid(body: string): string | null {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(body);
  } catch {
    return 'malformed';
  }
  if (!Number.isSafeInteger(v.pk)) return 'pk';
  if (typeof v.username !== 'string') return 'username';
  for (const k of ['followerCount', 'followingCount']) {
    if (!Number.isSafeInteger(v[k]) || (v[k] as number) < 0) return k;
  }
  return null;
}

function kind(r: Reply): string {
  if (r.status !== 200) return String(r.status);
  const why = invalid(r.body);
  return why === null ? 'ok' : why === 'malformed' ? 'malformed' : 'bad-field';
}

async function sequence(options: Partial<MockOptions>, n: number): Promise<Reply[]> {
  const m = await startMock({ port: 0, ...options });
  try {
    const out: Reply[] = [];
    for (let i = 0; i < n; i++) out.push(await get(m.url, `/api/v1/influencers/${PK + (i % 50)}`));
    return out;
  } finally {
    await m.close();
  }
}

t.test('influencer shape, username and integer counts', async (t) => {
  const m = await mock(t, { seed: 1 });
  const r = await get(m.url, `/api/v1/influencers/${PK + 7}`);
  t.equal(r.status, 200);
  const v = JSON.parse(r.body);
  t.same(Object.keys(v), ['pk', 'username', 'followerCount', 'followingCount']);
  t.equal(v.pk, PK + 7);
  t.equal(v.username, `influencer-${PK + 7}`);
  t.ok(Number.isInteger(v.followerCount) && v.followerCount >= 5000);
  t.ok(Number.isInteger(v.followingCount) && v.followingCount >= 50);
  t.same(m.stats(), { requests: 1, influencers: 1 });
});

t.test('first values centre on 100000 / 1000 and never go below the floors', async (t) => {
  const m = await mock(t, { seed: 2 });
  let followers = 0;
  let following = 0;
  await Promise.all(
    Array.from({ length: 6 }, async (_, lane) => {
      for (let i = lane; i < 300; i += 6) {
        const v = JSON.parse((await get(m.url, `/api/v1/influencers/${PK + i}`)).body);
        followers += v.followerCount;
        following += v.followingCount;
      }
    }),
  );
  t.ok(followers / 300 > 80_000 && followers / 300 < 120_000, `mean followers ${followers / 300}`);
  t.ok(following / 300 > 800 && following / 300 < 1200, `mean following ${following / 300}`);
  t.equal(m.stats().influencers, 300);

  let atFloor = 0;
  let moved = 0;
  const walk = async (pk: number): Promise<void> => {
    let last = -1;
    for (let i = 0; i < 200; i++) {
      const v = JSON.parse((await get(m.url, `/api/v1/influencers/${pk}`)).body);
      if (!(Number.isInteger(v.followerCount) && v.followerCount >= 5000)) t.fail(`followerCount ${v.followerCount}`);
      if (!(Number.isInteger(v.followingCount) && v.followingCount >= 50)) t.fail(`followingCount ${v.followingCount}`);
      if (v.followingCount === 50) atFloor++;
      if (v.followerCount !== last) moved++;
      last = v.followerCount;
    }
  };
  await Promise.all([0, 1, 2, 3].map((i) => walk(PK + i)));
  t.ok(moved > 700, 'every request moves the counts');
  t.ok(atFloor > 0, 'the following floor is reached and held');
  t.same(m.stats(), { requests: 1100, influencers: 300 });
});

t.test('unknown, non-numeric and unrouted', async (t) => {
  const m = await mock(t, { seed: 3, pkMin: 10, count: 5 });
  for (const pk of ['9', '15', 'abc', '12x', '-11', '1e1', '12345678901234567890', 'is_suspicious']) {
    t.same(await get(m.url, `/api/v1/influencers/${pk}`), { status: 400, body: NOT_FOUND, retryAfter: null }, pk);
    t.same((await get(m.url, `/api/v1/influencers/${pk}/is_suspicious`)).body, NOT_FOUND, `${pk}/is_suspicious`);
  }
  t.equal((await get(m.url, '/api/v1/influencers/14')).status, 200, 'last valid pk');
  t.equal((await get(m.url, '/api/v1/influencers/10?x=1')).status, 200, 'query string ignored');
  for (const path of [
    '/',
    '/api/v1/influencers/',
    '/api/v1/influencers/10/',
    '/api/v1/influencers/10/other',
    '/api/v2/influencers/10',
  ]) {
    t.equal((await get(m.url, path)).status, 404, path);
  }
  t.equal((await get(m.url, '/api/v1/influencers/10', { method: 'DELETE' })).status, 404, 'DELETE');
  t.equal((await get(m.url, '/api/v1/influencers/10', { method: 'POST', body: '{}' })).status, 404, 'POST to a pk');
  t.equal(m.stats().influencers, 2);
});

t.test('is_suspicious, GET and POST, follow the ratio rule', async (t) => {
  const m = await mock(t, { seed: 4 });
  for (let i = 0; i < 60; i++) {
    const pk = PK + i;
    const v = JSON.parse((await get(m.url, `/api/v1/influencers/${pk}`)).body);
    const expected = v.followerCount / v.followingCount <= 5.64;
    const g = await get(m.url, `/api/v1/influencers/${pk}/is_suspicious`);
    t.same(JSON.parse(g.body), { pk, suspicious: expected });
    const p = await get(m.url, '/api/v1/influencers/is_suspicious', { method: 'POST', body: JSON.stringify(v) });
    if (p.body !== JSON.stringify({ pk, suspicious: expected })) t.fail(`POST ${p.body}`);
  }
  const post = async (followerCount: number, followingCount: number): Promise<Reply> =>
    get(m.url, '/api/v1/influencers/is_suspicious', {
      method: 'POST',
      body: JSON.stringify({ pk: 1, username: 'x', followerCount, followingCount }),
    });
  t.equal((await post(564, 100)).body, '{"pk":1,"suspicious":true}', 'ratio 5.64 is suspicious');
  t.equal((await post(565, 100)).body, '{"pk":1,"suspicious":false}');
  t.equal((await post(0, 0)).body, '{"pk":1,"suspicious":false}');
  // a never-fetched pk is created by is_suspicious itself
  t.equal((await get(m.url, `/api/v1/influencers/${PK + 500}/is_suspicious`)).status, 200);
});

t.test('POST is_suspicious rejects a bad body with a one-line 400', async (t) => {
  const m = await mock(t, { seed: 5 });
  const bodies = [
    '{"pk":1',
    '[]',
    'null',
    '{"username":"x","followerCount":1,"followingCount":1}',
    '{"pk":1,"followerCount":1,"followingCount":1}',
    '{"pk":1,"username":"x","followerCount":"1","followingCount":1}',
    '{"pk":1,"username":"x","followerCount":-1,"followingCount":1}',
    '{"pk":1,"username":"x","followerCount":1}',
  ];
  for (const body of bodies) {
    const r = await get(m.url, '/api/v1/influencers/is_suspicious', { method: 'POST', body });
    t.equal(r.status, 400, body);
    t.notOk(r.body.includes('\n'), 'one line');
    t.equal(JSON.parse(r.body).error.name, 'BadRequestError');
  }
});

t.test('suspiciousDelayScale 0 answers at once', async (t) => {
  const m = await mock(t, { seed: 6, suspiciousDelayScale: 0 });
  const replies = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      get(m.url, `/api/v1/influencers/${PK + i}/is_suspicious`, { signal: AbortSignal.timeout(5000) }),
    ),
  );
  t.ok(replies.every((r) => r.status === 200));
});

t.test('latency delays the answer by at least latencyMs', async (t) => {
  const m = await mock(t, { seed: 7, latencyMs: 40, jitterMs: 10 });
  const started = performance.now();
  t.equal((await get(m.url, `/api/v1/influencers/${PK}`)).status, 200);
  t.ok(performance.now() - started >= 35);
});

t.test('the same seed gives the same values', async (t) => {
  const [a, b, c] = await Promise.all([
    sequence({ seed: 42 }, 100),
    sequence({ seed: 42 }, 100),
    sequence({ seed: 43 }, 100),
  ]);
  t.same(a, b);
  t.not(JSON.stringify(a), JSON.stringify(c));
});

const faults: [keyof MockOptions, string][] = [
  ['errorRate', '503'],
  ['rateLimitRate', '429'],
  ['malformedRate', 'malformed'],
  ['badFieldRate', 'bad-field'],
];
for (const [flag, expected] of faults) {
  t.test(`${flag} 0.3 gives ${expected} at about its rate, reproducibly`, async (t) => {
    const options = { seed: 9, [flag]: 0.3, retryAfterS: 7 };
    const [first, again] = await Promise.all([sequence(options, 300), sequence(options, 300)]);
    t.same(again, first, 'same seed, same sequence');
    const kinds = first.map(kind);
    const hits = kinds.filter((k) => k === expected).length;
    t.ok(hits >= 60 && hits <= 120, `${hits} of 300 are ${expected}`);
    t.equal(hits + kinds.filter((k) => k === 'ok').length, 300, 'nothing else');
    if (expected === '503')
      t.equal(first.find((r) => r.status === 503)?.body, '{"error":{"name":"ServiceUnavailable"}}');
    if (expected === '429')
      t.ok(
        first.filter((r) => r.status === 429).every((r) => r.retryAfter === '7'),
        'Retry-After',
      );
  });
}

t.test('fault rates are exclusive and add up', async (t) => {
  const kinds = (
    await sequence({ seed: 10, errorRate: 0.2, rateLimitRate: 0.2, malformedRate: 0.2, badFieldRate: 0.2 }, 500)
  ).map(kind);
  for (const k of ['503', '429', 'malformed', 'bad-field', 'ok']) {
    const n = kinds.filter((x) => x === k).length;
    t.ok(n >= 60 && n <= 140, `${n} of 500 are ${k}`);
  }
});

/** Starts n requests at once; resolves with how many got no answer within timeoutMs. */
async function countHangs(url: string, n: number, timeoutMs: number): Promise<number> {
  const outcomes = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      fetch(`${url}/api/v1/influencers/${PK + i}`, { signal: AbortSignal.timeout(timeoutMs) }).then(
        async (r) => {
          await r.text();
          return 0;
        },
        () => 1,
      ),
    ),
  );
  return outcomes.reduce((a, b) => a + b, 0);
}

t.test('setFaults switches faults of a running mock on and off', async (t) => {
  const m = await mock(t, { seed: 5 });
  const kinds = async (n: number): Promise<string[]> => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(kind(await get(m.url, `/api/v1/influencers/${PK + i}`)));
    return out;
  };
  t.same(new Set(await kinds(20)), new Set(['ok']));
  m.setFaults({ errorRate: 1 });
  t.same(new Set(await kinds(20)), new Set(['503']));
  m.setFaults({ errorRate: 0, rateLimitRate: 1, retryAfterS: 7 });
  const limited = await get(m.url, `/api/v1/influencers/${PK}`);
  t.same([limited.status, limited.retryAfter], [429, '7']);
  m.setFaults({ rateLimitRate: 0, malformedRate: 1 });
  t.same(new Set(await kinds(20)), new Set(['malformed']));
  m.setFaults({ malformedRate: 0 });
  t.same(new Set(await kinds(20)), new Set(['ok']), 'back to healthy');
  t.match(m.options(), { errorRate: 0, rateLimitRate: 0, retryAfterS: 7, malformedRate: 0, seed: 5 });
  t.throws(() => m.setFaults({ errorRate: 0.7, hangRate: 0.7 }), /add up to at most 1/);
  t.equal(m.options().errorRate, 0, 'a refused change leaves the faults as they were');
});

t.test('hangRate 0.3 leaves about 30 % unanswered, reproducibly', async (t) => {
  const counts = await Promise.all(
    [0, 1].map(async () => {
      const m = await startMock({ port: 0, seed: 11, hangRate: 0.3 });
      try {
        return await countHangs(m.url, 200, 5000);
      } finally {
        await m.close();
      }
    }),
  );
  t.ok(counts[0] >= 40 && counts[0] <= 80, `${counts[0]} of 200 hung`);
  t.equal(counts[1], counts[0]);
});

t.test('a hanging request times out on the client and close() still resolves', async (t) => {
  const m = await startMock({ port: 0, seed: 12, hangRate: 1 });
  const timedOut = await new Promise<boolean>((resolve) => {
    const req = request(`${m.url}/api/v1/influencers/${PK}`, { timeout: 200 }, () => resolve(false));
    req.on('timeout', () => {
      req.destroy();
      resolve(true);
    });
    req.on('error', () => undefined);
    req.end();
  });
  t.ok(timedOut, 'client timeout fired');
  // a second one is still hanging, with no client timeout, when the server closes
  const pending = fetch(`${m.url}/api/v1/influencers/${PK}`).then(
    () => 'answered',
    () => 'dropped',
  );
  await sleep(50);
  const closed = await Promise.race([
    m.close().then(() => 'closed'),
    new Promise((r) => setTimeout(r, 5000, 'stuck').unref()),
  ]);
  t.equal(closed, 'closed');
  t.equal(await pending, 'dropped');
  t.equal(m.close(), m.close(), 'close is memoised');
});

t.test('close() drops delayed answers and idle keep-alive sockets', async (t) => {
  const m = await startMock({ port: 0, seed: 13, suspiciousDelayScale: 10 });
  await get(m.url, `/api/v1/influencers/${PK}`); // leaves an idle keep-alive socket
  const pending = fetch(`${m.url}/api/v1/influencers/${PK}/is_suspicious`).then(
    () => 'answered',
    () => 'dropped',
  );
  await sleep(50);
  await m.close();
  t.equal(await pending, 'dropped');
});

t.test('options are validated', async (t) => {
  t.equal(DEFAULT_MOCK_OPTIONS.pkMin, 1_000_000);
  t.equal(DEFAULT_MOCK_OPTIONS.count, 1_000_000);
  await t.rejects(startMock({ port: 0, errorRate: 1.5 }), RangeError);
  await t.rejects(startMock({ port: 0, errorRate: 0.6, hangRate: 0.6 }), /add up to at most 1/);
  await t.rejects(startMock({ port: 0, count: 0 }), /count/);
  await t.rejects(startMock({ port: -1 }), /port/);
  const m = await startMock({ port: 0, count: undefined, seed: 1 });
  t.match(m.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  await m.close();
});
