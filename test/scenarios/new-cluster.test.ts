// A new cluster: its running totals start at 0 before any node logs a sample. A node that comes up
// while another is still starting them waits, then polls; nothing is rebuilt, and every point
// counted is readable at once (a rebuild's points before its cutoff would reach the open buffers
// only when their period closes).
import t from 'tap';
import { ClusterLock } from '../../lib/cluster/locks.js';
import { createLogger } from '../../lib/shared/log.js';
import { readMembers } from '../../lib/cluster/member-view.js';
import { checkStore, range, startCluster, PK_MIN } from '../helpers/cluster.js';
import { sleep, until } from '../kit/wait.js';
import { stopChild } from '../kit/children.js';

const INTERVAL = 2000;

t.test("a node waits for a new cluster's totals to start before it polls", async (t) => {
  const c = await startCluster(t, { pks: 200, intervalMs: INTERVAL, ttlMs: 1500, extraEnv: { LOG_LEVEL: 'info' } });
  // another node holds the job that starts the totals, as if it were starting them
  const lock = new ClusterLock(c.redis, c.svc.cluster, createLogger('silent'));
  let release!: () => void;
  const held = lock.runExclusive(
    'rebuild-totals',
    () =>
      new Promise<void>((r) => {
        release = r;
      }),
  );
  await until(async () => (await c.redis.exists(lock.key('rebuild-totals'))) === 1, 10_000, 'lock held');
  const node = c.spawnNode('first');
  await until(() => /waiting for the running totals to start/.test(node.output()), 30_000, 'the node says it waits');
  await sleep(INTERVAL);
  const logs = (await c.db.listCollections({}, { nameOnly: true }).toArray()).filter((x) => x.name.startsWith('log_'));
  t.same(
    logs.map((x) => x.name),
    [],
    'no sample logged while the totals have not started',
  );
  t.same(
    (await readMembers(c.redis, c.svc.cluster)).map((x) => x.ok && x.card.state),
    ['joining'],
    'its card says joining: not on the ring yet',
  );

  release();
  await held;
  await until(
    async () => (await readMembers(c.redis, c.svc.cluster)).some((x) => x.ok && Number(x.card.stats.stored) >= 400),
    60_000,
    'two intervals stored',
  );
  t.equal(await stopChild(node), 0, 'graceful stop');
  t.match(node.output(), /running totals start empty/, 'the totals started at 0');
  t.notMatch(node.output(), /rebuilding the running totals/, 'nothing rebuilt');
  const check = await checkStore(c, range(PK_MIN, 200), INTERVAL, 0, 0);
  t.ok(check.points >= 400, `points readable (${check.points})`);
  t.same(check.totalsMismatch.slice(0, 5), [], 'every point counted is readable');
});
