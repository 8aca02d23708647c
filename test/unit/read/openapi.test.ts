// The read API's contract: /api/openapi.json is a valid OpenAPI 3.1 document, and every answer of
// every route (each documented status, on /api/v1 and on the aliases without it) matches its schema.
// Also what the contract promises around the answers: times must carry an offset, a 5xx names a
// request id and never the cause, CORS is off unless allowed, serve's health and metrics.
import t from 'tap';
import { Writable } from 'node:stream';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { Validator } from '@seriousme/openapi-schema-validator';
import { pino } from 'pino';
import { startApi, type ApiLimits, type ApiServer } from '../../../lib/read/api.js';
import { loadConfig } from '../../../lib/ops/config.js';
import { createLogger, type Logger } from '../../../lib/shared/log.js';
import { connectMongo, createMongo } from '../../../lib/shared/mongo.js';
import { connectRedis, createRedis, servers } from '../../../lib/shared/redis.js';
import { loadLayout } from '../../../lib/storage/format/layout.js';
import { TimelineReader } from '../../../lib/storage/read/reader.js';
import { Totals } from '../../../lib/storage/state/totals.js';
import type { Sample } from '../../../lib/storage/format/documents.js';
import { services } from '../../kit/servers.js';
import { sampleStore, startTotals, takeRankings } from '../../helpers/storage.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const A = 1_000_042;

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON answers of every shape
  body: any;
}

async function call(base: string, path: string, init: RequestInit = {}): Promise<Answer> {
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** Log lines as objects, to find what the server logged under a request id. */
function capturedLogger(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'warn' }, sink), lines };
}

type Owner = Parameters<Parameters<typeof t.test>[1]>[0];

/** The API over the test's servers (or, with `redisDown`, over a Redis that never answers). */
async function api(
  t: Owner,
  env: Record<string, string> = {},
  opts: { redisDown?: boolean; log?: Logger; limits?: ApiLimits } = {},
): Promise<{ server: ApiServer; write: (s: Sample[]) => Promise<unknown>; pause: (ms: number) => Promise<unknown> }> {
  const svc = await services(t);
  const log = opts.log ?? createLogger('silent');
  const target = opts.redisDown ? 'redis://127.0.0.1:1' : svc.redisTarget;
  const redis = createRedis(target, log, 'contract', opts.redisDown ? { retryStrategy: () => null } : {});
  redis.on('error', () => undefined);
  if (!opts.redisDown) await connectRedis(redis, target, log);
  const mongo = createMongo(svc.mongoUrl);
  const db = await connectMongo(mongo, svc.mongoUrl, svc.mongoDb, log);
  const config = loadConfig(
    {},
    { CLUSTER: svc.cluster, MONGO_DB: svc.mongoDb, PK_MIN: '1000000', PK_MAX: '1000999', ...env },
  );
  const layout = await loadLayout(db, config, Date.now() - 3 * 86_400_000);
  if (!opts.redisDown) await startTotals(redis, db, layout, svc.cluster);
  const server = await startApi(
    { config, redis, reader: new TimelineReader(redis, db, layout, svc.cluster), log },
    // every answer reads the newest ranking snapshots: one is taken after each write
    { host: '127.0.0.1', port: 0, rankingsRecheckMs: 0, ...opts.limits },
  );
  t.teardown(async () => {
    await server.stop();
    redis.disconnect();
    await mongo.close();
  });
  return {
    server,
    write: async (samples) => {
      const totals = new Totals(redis, svc.cluster, layout.slices);
      const batch = await sampleStore(db, totals, layout)(samples);
      await takeRankings(redis, svc.cluster, totals);
      return batch;
    },
    // every Redis read of the API hangs that long: requests pile up at the gate
    pause: (ms) => Promise.all(servers(redis).map((server) => server.call('CLIENT', 'PAUSE', String(ms), 'ALL'))),
  };
}

const sample = (pk: number, at: number, followerCount: number, followingCount: number): Sample => ({
  pk,
  at,
  username: `influencer-${pk}`,
  followerCount,
  followingCount,
});

t.test('every route answers as /api/openapi.json says, on /api/v1 and on the aliases', async (t) => {
  const up = await api(t);
  const down = await api(t, {}, { redisDown: true });
  const busy = await api(t, {}, { limits: { maxInFlight: 1, maxQueued: 0 } });
  const now = Math.floor(Date.now() / MIN) * MIN;
  const base = Math.floor((now - 2 * 86_400_000) / HOUR) * HOUR;
  await up.write([
    sample(A, now - 2 * MIN, 100_000, 1000),
    sample(A, now - MIN, 100_300, 1003),
    sample(A, now, 100_600, 0),
    sample(A + 1, now, 200_000, 10),
    ...Array.from({ length: 5 }, (_, i) => sample(A + 2, base + i * MIN, 50_000 + i, 500)),
  ]);

  const doc = (await call(up.server.url, '/api/openapi.json')).body;
  const validator = new Validator();
  const valid = await validator.validate(doc);
  t.ok(valid.valid, 'a valid OpenAPI 3.1 document', { errors: valid.errors });
  t.equal(doc.openapi, '3.1.0');

  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema(doc, 'openapi');
  const templates = Object.keys(doc.paths);
  const covered = new Set<string>();
  const templateOf = (path: string): string | undefined => {
    const bare = path.split('?')[0];
    const v1 = /^\/api\/(?!v1\/|openapi\.json)/.test(bare) ? bare.replace(/^\/api\//, '/api/v1/') : bare;
    return templates.find((tpl) => new RegExp(`^${tpl.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(v1));
  };
  const check = async (server: ApiServer, path: string, status: number): Promise<Answer> => {
    const r = await call(server.url, path);
    t.equal(r.status, status, `${path}: ${status}`);
    const tpl = templateOf(path);
    const documented = tpl && doc.paths[tpl].get.responses[String(r.status)];
    if (!tpl || !documented) {
      t.fail(`${path}: status ${r.status} is not in the document`);
      return r;
    }
    covered.add(`${tpl} ${r.status}`);
    const [type] = Object.keys(documented.content);
    t.match(r.headers.get('content-type'), new RegExp(`^${type.replace('/', '\\/')}`), `${path}: ${type}`);
    if (type === 'application/json') {
      const pointer = `openapi#/paths/${tpl.replace(/~/g, '~0').replace(/\//g, '~1')}/get/responses/${r.status}/content/application~1json/schema`;
      const ok = ajv.validate({ $ref: pointer }, r.body);
      t.ok(ok, `${path} ${r.status}: the answer matches its schema`, { errors: ajv.errors, body: r.body });
    }
    return r;
  };

  for (const prefix of ['/api/v1', '/api']) {
    await check(up.server, `${prefix}/influencers/${A}`, 200);
    await check(up.server, `${prefix}/influencers/${A + 1}`, 200);
    await check(up.server, `${prefix}/influencers/abc`, 400);
    await check(up.server, `${prefix}/influencers/1000500`, 404);
    await check(down.server, `${prefix}/influencers/${A}`, 503);
    const interval = await check(
      up.server,
      `${prefix}/influencers/${A}/timeline?from=${now - 5 * MIN}&to=${now + 1}`,
      200,
    );
    t.equal(interval.body.resolution, 'interval');
    const buckets = await check(
      up.server,
      `${prefix}/influencers/${A + 2}/timeline?from=${new Date(base).toISOString()}&to=${new Date(now).toISOString()}`,
      200,
    );
    t.equal(buckets.body.resolution, 'bucket');
    t.same(Object.keys(buckets.body.points[0]).sort(), Object.keys(interval.body.points[0]).sort(), 'one point shape');
    await check(up.server, `${prefix}/influencers/${A}/timeline?from=2026`, 400);
    await check(up.server, `${prefix}/influencers/1000500/timeline`, 404);
    await check(down.server, `${prefix}/influencers/${A}/timeline`, 503);
    await check(up.server, `${prefix}/influencers?sort=followers&limit=3`, 200);
    await check(up.server, `${prefix}/influencers?sort=growth`, 200);
    await check(up.server, `${prefix}/influencers?limit=0`, 400);
    await check(down.server, `${prefix}/influencers`, 503);
    await check(up.server, `${prefix}/stats`, 200);
    await check(down.server, `${prefix}/stats`, 503);
    await check(up.server, `${prefix}/cluster`, 200);
    await check(down.server, `${prefix}/cluster`, 503);
    t.same(
      (await call(up.server.url, `${prefix}/influencers/${A}`)).body,
      (await call(up.server.url, `/api/v1/influencers/${A}`)).body,
      `${prefix}: the same answer as /api/v1`,
    );
  }
  await check(up.server, '/api/openapi.json', 200);
  await check(up.server, '/healthz', 200);
  await check(down.server, '/healthz', 200);
  await check(up.server, '/readyz', 200);
  const notReady = await check(down.server, '/readyz', 503);
  t.equal(notReady.text, 'not ready: Redis unreachable\n');
  await check(up.server, '/metrics', 200);

  // more requests at once than a cap of 1 running and none waiting: 503 with Retry-After, as documented
  await busy.pause(1000);
  const burst = await Promise.all(Array.from({ length: 4 }, () => fetch(`${busy.server.url}/api/v1/stats`)));
  const refused = burst.find((r) => r.status === 503);
  t.ok(refused, 'a request past the cap is refused');
  t.equal(refused?.headers.get('retry-after'), '1');
  t.ok(ajv.validate({ $ref: 'openapi#/components/schemas/Error' }, await refused?.json()), 'as an Error');

  const documented = templates.flatMap((tpl) => Object.keys(doc.paths[tpl].get.responses).map((s) => `${tpl} ${s}`));
  t.same(
    documented.filter((d) => !covered.has(d)),
    [],
    `every documented route and status was answered and checked (${covered.size})`,
  );
});

t.test('times must say which instant they are: an offset, or epoch milliseconds', async (t) => {
  const { server, write } = await api(t);
  const now = Math.floor(Date.now() / MIN) * MIN;
  await write([sample(A, now - MIN, 1000, 10)]);
  const timeline = (q: string) => call(server.url, `/api/v1/influencers/${A}/timeline?${q}`);
  const from = new Date(now - 10 * MIN);
  const offset = `${from.toISOString().slice(0, 16)}Z`;
  const plusOne = new Date(from.getTime() + HOUR).toISOString().slice(0, 16);
  for (const q of [`from=${offset}`, `from=${encodeURIComponent(`${plusOne}+01:00`)}`, `from=${from.getTime()}`]) {
    const r = await timeline(q);
    t.equal(r.status, 200, q);
    t.equal(r.body.from, from.toISOString(), `${q}: read as ${from.toISOString()}`);
  }
  for (const [q, message] of [
    [
      'from=2026',
      /^from="2026" is not valid: .* or epoch milliseconds \(12 digits or more: 2026 would be 1970-01-01T00:00:02\.026Z\)$/,
    ],
    [`from=${Math.floor(now / 1000)}`, /is not valid: .*epoch milliseconds \(12 digits or more/],
    [
      `from=${offset.slice(0, -1)}`,
      /^from="[^"]+" is not valid: expected an ISO time with an offset .*: this one has no offset$/,
    ],
    ['to=2026-11-27', /^to="2026-11-27" is not valid: .*this one has no offset$/],
  ] as const) {
    const r = await timeline(q);
    t.equal(r.status, 400, q);
    t.match(r.body.error, message, q);
  }
});

t.test('a 5xx names its request id, never the cause; the log has the cause under that id', async (t) => {
  const { log, lines } = capturedLogger();
  const { server } = await api(t, {}, { redisDown: true, log });
  const r = await call(server.url, `/api/v1/influencers/${A}`);
  t.equal(r.status, 503);
  t.same(Object.keys(r.body).sort(), ['error', 'requestId']);
  t.equal(r.headers.get('x-request-id'), r.body.requestId, 'the header names the same id');
  t.match(
    r.body.error,
    new RegExp(`^storage unavailable: the cause is in the server log under request ${r.body.requestId}$`),
  );
  const logged = lines.find((l) => l.requestId === r.body.requestId);
  t.ok(logged, 'a log line under that id');
  t.ok(typeof logged?.err === 'string' && logged.err.length > 0, `the log has the cause: ${logged?.err}`);
  t.notOk(r.text.includes(String(logged?.err)), 'the answer does not');
  const proxied = await call(server.url, `/api/v1/stats`, { headers: { 'X-Request-Id': 'edge-42' } });
  t.equal(proxied.body.requestId, 'edge-42', "a proxy's request id is kept");
  const bad = await call(server.url, `/api/v1/stats`, { headers: { 'X-Request-Id': 'no spaces <>' } });
  t.match(bad.body.requestId, /^[0-9a-f]{12}$/, 'an odd one is replaced');
});

t.test('CORS: off by default; CORS_ORIGIN allows the origins it names, for GET and HEAD only', async (t) => {
  const origin = 'https://grafana.example.com';
  const off = await api(t);
  const plain = await call(off.server.url, '/api/v1/stats', { headers: { Origin: origin } });
  t.equal(plain.status, 200);
  t.equal(plain.headers.get('access-control-allow-origin'), null, 'no CORS header by default');
  const offPreflight = await call(off.server.url, '/api/v1/stats', {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'GET' },
  });
  t.equal(offPreflight.status, 405, 'no preflight either');

  const on = await api(t, { CORS_ORIGIN: `${origin}, http://localhost:3000` });
  const allowed = await call(on.server.url, '/api/v1/stats', { headers: { Origin: origin } });
  t.equal(allowed.headers.get('access-control-allow-origin'), origin);
  t.equal(allowed.headers.get('vary'), 'Origin');
  t.match(allowed.headers.get('access-control-expose-headers'), /X-Request-Id/);
  const other = await call(on.server.url, '/api/v1/stats', { headers: { Origin: 'https://evil.example' } });
  t.equal(other.headers.get('access-control-allow-origin'), null, 'another origin gets no grant');
  const preflight = await call(on.server.url, '/api/v1/influencers', {
    method: 'OPTIONS',
    headers: {
      Origin: origin,
      'Access-Control-Request-Method': 'GET',
      'Access-Control-Request-Headers': 'x-request-id',
    },
  });
  t.equal(preflight.status, 204);
  t.equal(preflight.headers.get('access-control-allow-methods'), 'GET, HEAD');
  t.equal(preflight.headers.get('access-control-allow-headers'), 'x-request-id');
  const refused = await call(on.server.url, '/api/v1/influencers', {
    method: 'OPTIONS',
    headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'GET' },
  });
  t.equal(refused.status, 403);
  t.match(refused.body.error, /origin "https:\/\/evil\.example" may not read this API: CORS_ORIGIN allows/);
  t.equal((await call(on.server.url, '/api/v1/stats', { method: 'POST', headers: { Origin: origin } })).status, 405);

  const any = await api(t, { CORS_ORIGIN: '*' });
  t.equal(
    (await call(any.server.url, '/api/v1/stats', { headers: { Origin: 'https://x.example' } })).headers.get(
      'access-control-allow-origin',
    ),
    '*',
  );
});

t.test("serve's /metrics counts requests by route and status, 503s included", async (t) => {
  const { server, pause } = await api(t, {}, { limits: { maxInFlight: 1, maxQueued: 0 } });
  await call(server.url, `/api/v1/influencers/${A}`);
  await call(server.url, `/api/influencers/abc`);
  await pause(1000);
  await Promise.all(Array.from({ length: 4 }, () => fetch(`${server.url}/api/v1/stats`)));
  const text = (await call(server.url, '/metrics')).text;
  const value = (line: string): number =>
    Number(new RegExp(`^${line.replace(/[{}()|[\]\\.+*?^$]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
  t.equal(value('influencer_api_requests_total{route="/api/v1/influencers/{pk}",status="404"}'), 1, 'no data yet: 404');
  t.equal(
    value('influencer_api_requests_total{route="/api/v1/influencers/{pk}",status="400"}'),
    1,
    'the alias counted as its route',
  );
  t.equal(value('influencer_api_requests_total{route="/api/v1/stats",status="200"}'), 1, 'one /stats answered');
  t.equal(value('influencer_api_requests_total{route="/api/v1/stats",status="503"}'), 3, 'three refused: 503');
  t.match(text, /^influencer_api_request_duration_seconds_count\{route="\/api\/v1\/stats"\} 4$/m);
  t.match(text, /^influencer_api_redis_up 1$/m);
  t.match(text, /^influencer_api_mongo_up 1$/m);
  t.match(text, /^process_resident_memory_bytes \d+/m);
});
