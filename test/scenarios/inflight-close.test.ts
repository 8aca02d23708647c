// A fetch still answering when its period's close begins: every answer takes 8 s (the request
// timeout is 9 s), so the last interval of a period reaches the log well after the flush age and the
// old grace. The member card must not say it is logged while it is in flight, and the close must
// wait for it: every sample polled is a point, none is counted late.
import t from 'tap';
import { clusterKeys } from '../../lib/shared/keys.js';
import { closeGraceMs } from '../../lib/storage/jobs/closer.js';
import { checkStore, range, startCluster, PK_MIN } from '../helpers/cluster.js';
import { until } from '../kit/wait.js';

const PKS = 40;
const INTERVAL = 1000;
const BUCKET = 10 * INTERVAL;

t.test('the grace before a close follows from the request timeout and the flush age', async (t) => {
  t.ok(closeGraceMs({ requestTimeoutMs: 9000, flushMaxAgeMs: 200 }) >= 9200, 'a 9 s request timeout');
  t.ok(closeGraceMs({ requestTimeoutMs: 1000, flushMaxAgeMs: 5000 }) >= 6000, 'a 5 s flush age');
});

t.test('samples whose fetch outlives the old grace are closed into their period, none late', async (t) => {
  const c = await startCluster(t, {
    pks: PKS,
    intervalMs: INTERVAL,
    ttlMs: 3000,
    mock: { latencyMs: 8000 },
    extraEnv: { REQUEST_TIMEOUT_MS: '9000', CONCURRENCY: '500' },
  });
  const node = await c.startNode('a');
  const from = Math.ceil((Date.now() + INTERVAL) / BUCKET) * BUCKET;
  const to = from + 2 * BUCKET;
  await until(
    async () => Number(await c.redis.get(clusterKeys(c.svc.cluster).closed)) >= to - BUCKET,
    120_000,
    'two whole periods closed',
  );
  // stopped (every fetch answered and stored) so that the totals and the points are read at rest
  await node.stop();
  const late = Number(node.stats().late);
  const check = await checkStore(c, range(PK_MIN, PKS), INTERVAL, from, to);
  t.equal(late, 0, `no sample counted late (${late})`);
  t.same(
    check.gaps.slice(0, 5),
    [],
    `every (pk, interval) of the closed periods has a point (${check.gaps.length} missing)`,
  );
  t.same(check.totalsMismatch.slice(0, 5), [], 'running totals equal the stored points');
  t.equal(check.duplicates, 0);
});
