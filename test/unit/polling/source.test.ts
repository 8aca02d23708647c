// Property-based tests (fast-check) of the Mockstagram client and its validation against a hostile
// upstream: malformed JSON, wrong types, negative, fractional, huge and missing counts, megabyte
// bodies, a body that trickles one byte a second, a 200 with an HTML page, redirects, cut
// connections. Each such answer is one counted fetch error, never a sample; memory stays bounded;
// a node polling such an upstream stores only what was valid. Each property prints how many
// generated cases it ran; a failure prints the seed that replays it.
import t, { type Test } from 'tap';
import fc from 'fast-check';
import { MockstagramClient, type FetchResult } from '../../../lib/polling/source.js';
import { validateInfluencer } from '../../../lib/polling/answer.js';
import type { SchedulerStats } from '../../../lib/polling/scheduler.js';
import {
  accepted,
  hostileServer,
  notFound,
  payload,
  reply,
  validBody,
  validReply,
  type Reply,
} from '../../helpers/hostile.js';
import { checkStore, range, startCluster, PK_MIN } from '../../helpers/cluster.js';
import { intervalStart, sleep } from '../../kit/wait.js';
import { loadLayout } from '../../../lib/storage/format/layout.js';
import { TimelineReader } from '../../../lib/storage/read/reader.js';

/** Runs a property with fc.check (bounded in time), fails the test with its counterexample and seed, and says how many cases ran. */
async function holds<T>(
  t: Test,
  name: string,
  property: fc.IAsyncProperty<T> | fc.IProperty<T>,
  params: fc.Parameters<T>,
): Promise<number> {
  const details = await fc.check(property as fc.IAsyncProperty<T>, params);
  const why = details.failed
    ? `seed ${details.seed}, path ${details.counterexamplePath}: ${fc.stringify(details.counterexample)} ${details.errorInstance ?? ''}`
    : '';
  t.notOk(details.failed, `${name} (${details.numRuns} generated cases) ${why}`);
  t.comment(`${name}: ${details.numRuns} generated cases ran`);
  return details.numRuns;
}

const pkAndPayload = fc.integer({ min: 1, max: 9_999_999 }).chain((pk) => fc.tuple(fc.constant(pk), payload(pk)));

t.test(
  'validation: a payload is taken exactly when it is the pk asked for with a username and counts 0..2^32-1',
  async (t) => {
    const runs = await holds(
      t,
      'validation',
      fc.property(pkAndPayload, ([pk, body]) => {
        const wire = JSON.parse(JSON.stringify(body) ?? 'null') as unknown;
        const v = validateInfluencer(pk, wire);
        if (!validBody(pk, wire)) return typeof v === 'string' && v.length < 200 && !v.includes('\n');
        return (
          typeof v === 'object' &&
          v.pk === pk &&
          v.followerCount === wire.followerCount &&
          v.followingCount === wire.followingCount &&
          !Object.is(v.followerCount, -0) &&
          !Object.is(v.followingCount, -0)
        );
      }),
      { numRuns: 5000 },
    );
    t.equal(runs, 5000);
  },
);

/** What a one-attempt fetch must give for a reply: its counts, not found, or one counted error. */
function expected(pk: number, r: Reply, result: FetchResult, errors: string[]): boolean {
  const counts = accepted(pk, r);
  if (counts)
    return (
      result.kind === 'ok' &&
      errors.length === 0 &&
      result.influencer.followerCount === counts.followerCount &&
      result.influencer.followingCount === counts.followingCount
    );
  if (notFound(r)) return result.kind === 'not_found' && errors.length === 0;
  return result.kind === 'failed' && errors.length === 1 && errors[0] === result.error;
}

t.test('the client: every broken answer is one counted fetch error, never a sample, in bounded memory', async (t) => {
  let current: Reply = { kind: 'json', status: 200, body: null };
  const server = await hostileServer(() => current);
  t.teardown(() => server.close());
  const client = new MockstagramClient(server.url, { connections: 4, timeoutMs: 2000, maxAttempts: 1 });
  t.teardown(() => client.stop());
  // the JS heap and Buffers: what the client holds of an answer (RSS also counts the server's side)
  const held = (): number => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
  const heldBefore = held();
  let heldMax = heldBefore;
  const kinds = new Map<string, number>();
  const cases = fc.integer({ min: 1, max: 9_999_999 }).chain((pk) => fc.tuple(fc.constant(pk), reply(pk)));
  const runs = await holds(
    t,
    'client',
    fc.asyncProperty(cases, async ([pk, r]) => {
      current = r;
      const errors: string[] = [];
      const result = await client.fetch(pk, Date.now() + 10_000, (k) => errors.push(k));
      kinds.set(r.kind, (kinds.get(r.kind) ?? 0) + 1);
      heldMax = Math.max(heldMax, held());
      return expected(pk, r, result, errors);
    }),
    { numRuns: 400, interruptAfterTimeLimit: 60_000 },
  );
  t.ok(runs >= 100, `at least 100 cases within the time limit (${runs})`);
  t.comment(
    `answers by kind: ${JSON.stringify(Object.fromEntries(kinds))}; ${(server.bytes() / 1e6).toFixed(1)} MB served`,
  );
  const grownMb = (heldMax - heldBefore) / 2 ** 20;
  const servedMb = server.bytes() / 2 ** 20;
  t.ok(
    grownMb < 32,
    `memory bounded: heap and buffers grew ${grownMb.toFixed(1)} MiB while ${servedMb.toFixed(0)} MiB were served`,
  );
});

t.test('a body that trickles one byte a second is cut at the request timeout, whatever it holds', async (t) => {
  let current: Reply = { kind: 'json', status: 200, body: null };
  const server = await hostileServer(() => current);
  t.teardown(() => server.close());
  // 1,500 ms: a byte a second never leaves the connection idle that long
  const client = new MockstagramClient(server.url, { connections: 2, timeoutMs: 1500, maxAttempts: 1 });
  t.teardown(() => client.stop());
  const valid = fc.integer({ min: 1, max: 9_999_999 }).chain((pk) => fc.tuple(fc.constant(pk), validReply(pk)));
  await holds(
    t,
    'trickle',
    fc.asyncProperty(valid, async ([pk, r]) => {
      if (r.kind !== 'json') return false;
      current = { kind: 'trickle', body: r.body, everyMs: 1000 };
      const errors: string[] = [];
      const result = await client.fetch(pk, Date.now() + 60_000, (k) => errors.push(k));
      return result.kind === 'failed' && result.error === 'timeout' && errors.length === 1;
    }),
    // each run takes the request timeout: no shrinking, a failure is reported as it is
    { numRuns: 3, timeout: 5000, endOnFailure: true },
  );
});

t.test('a node polling a hostile upstream counts every broken answer and stores only valid ones', async (t) => {
  const pks = 40;
  const INTERVAL = 1000;
  const served = new Map<number, Set<string>>();
  let broken = 0;
  let answers = 0;
  const seed = Date.now() % 2 ** 31;
  const server = await hostileServer((pk) => {
    const [r] = fc.sample(fc.oneof(validReply(pk), reply(pk, { trickle: true })), {
      numRuns: 1,
      seed: seed + answers++,
    });
    const counts = accepted(pk, r!);
    if (counts) {
      const set = served.get(pk) ?? new Set<string>();
      served.set(pk, set.add(`${counts.followerCount}:${counts.followingCount}`));
    } else if (!notFound(r!)) broken++;
    return r!;
  });
  t.teardown(() => server.close());
  const c = await startCluster(t, {
    pks,
    intervalMs: INTERVAL,
    ttlMs: 1500,
    extraEnv: { MOCKSTAGRAM_URL: server.url, REQUEST_TIMEOUT_MS: '500', SUSPICIOUS_INTERVAL_MS: '0' },
  });
  const node = await c.startNode('hostile');
  const heapBefore = process.memoryUsage().heapUsed;
  let heapMax = heapBefore;
  const watch = setInterval(() => (heapMax = Math.max(heapMax, process.memoryUsage().heapUsed)), 50);
  const from = intervalStart(Date.now(), INTERVAL) + INTERVAL;
  await sleep(5 * INTERVAL);
  await node.stop();
  clearInterval(watch);
  const stats = node.stats() as unknown as SchedulerStats & { stored: number };
  const counted = Object.values(stats.fetchErrors).reduce((a, b) => a + (b ?? 0), 0);
  t.comment(
    `seed ${seed}: ${answers} generated answers served, ${broken} broken; fetch errors ${JSON.stringify(stats.fetchErrors)}`,
  );
  t.equal(counted, broken, 'every broken answer served is one counted fetch error');
  const check = await checkStore(c, range(PK_MIN, pks), INTERVAL, from, from);
  t.equal(check.malformed, 0, 'no malformed point stored');
  t.same(check.totalsMismatch, [], 'totals equal the stored points');
  t.ok(check.points > 0 && stats.stored > 0, `points stored (${check.points})`);
  const reader = new TimelineReader(c.redis, c.db, await loadLayout(c.db, c.config('checker')), c.svc.cluster);
  const foreign: string[] = [];
  for (const pk of range(PK_MIN, pks)) {
    for (const p of await reader.points(pk, 0, Date.now() + 60_000)) {
      if (!served.get(pk)?.has(`${p.f}:${p.g}`)) foreign.push(`${pk}@${p.at}: ${p.f}, ${p.g}`);
    }
  }
  t.same(foreign, [], 'every stored point is a valid answer served for its pk');
  const grownMb = (heapMax - heapBefore) / 2 ** 20;
  t.ok(
    grownMb < 64,
    `memory bounded: the heap grew ${grownMb.toFixed(1)} MiB (${(server.bytes() / 1e6).toFixed(0)} MB served)`,
  );
});
