// The Mongo server stopped for several intervals, then started again: polling goes on, the
// buffer holds the samples, and every sample of that time arrives. Past the buffer bound the
// oldest are dropped, counted and logged once.
import t from 'tap';
import { checkStore, range, startCluster, PK_MIN } from '../helpers/cluster.js';
import { intervalStart, sleep, until } from '../kit/wait.js';
import { stopChild } from '../kit/children.js';
import { readMembers } from '../../lib/cluster/member-view.js';
import { startFerret } from '../kit/servers.js';

const INTERVAL = 2000;

t.test('Mongo down for 3 intervals: nothing lost under the buffer bound', async (t) => {
  const ferret = await startFerret();
  const c = await startCluster(t, { pks: 400, intervalMs: INTERVAL, ttlMs: 1500, mongoUrl: ferret.url });
  const node = c.spawnNode('solo');
  await until(
    async () => (await readMembers(c.redis, c.svc.cluster)).some((x) => x.ok && Number(x.card.stats.owned) === 400),
    30_000,
    'node owning every pk',
  );
  const from = intervalStart(Date.now(), INTERVAL) + INTERVAL;
  await sleep(2 * INTERVAL);
  await ferret.down();
  await sleep(3 * INTERVAL);
  const cards = await readMembers(c.redis, c.svc.cluster);
  const queued = cards[0]?.ok ? Number(cards[0].card.stats.writeQueue) : 0;
  t.ok(queued >= 400, `samples held while Mongo is down (${queued} queued)`);
  await ferret.up();
  await sleep(3 * INTERVAL);
  const to = intervalStart(Date.now(), INTERVAL);
  t.equal(await stopChild(node), 0, 'graceful stop after the outage');
  const check = await checkStore(c, range(PK_MIN, 400), INTERVAL, from, to);
  t.ok((to - from) / INTERVAL >= 7, `window of ${(to - from) / INTERVAL} intervals`);
  t.same(check.gaps.slice(0, 10), [], `every interval of every pk arrived (${check.gaps.length} missing)`);
  t.same(check.totalsMismatch.slice(0, 10), [], 'running totals equal the stored points');
  t.match(node.output(), /MongoDB|mongo/i, 'the outage was logged');
  t.ok(
    node
      .output()
      .split('\n')
      .filter((l) => /"mongo":"down"/.test(l)).length <= 2,
    'logged once per state change, not per retry',
  );
  await ferret.stop();
});

t.test('past the buffer bound the oldest samples are dropped, counted and logged once', async (t) => {
  const ferret = await startFerret();
  const c = await startCluster(t, {
    pks: 300,
    intervalMs: INTERVAL,
    ttlMs: 1500,
    mongoUrl: ferret.url,
    extraEnv: { BUFFER_MAX_SAMPLES: '500' },
  });
  const node = c.spawnNode('small-buffer');
  await until(
    async () => (await readMembers(c.redis, c.svc.cluster)).some((x) => x.ok && Number(x.card.stats.stored) > 0),
    30_000,
    'first samples stored',
  );
  await ferret.down();
  await sleep(4 * INTERVAL);
  const cards = await readMembers(c.redis, c.svc.cluster);
  const stats = cards[0]?.ok ? cards[0].card.stats : {};
  t.ok(Number(stats.dropped) > 0, `dropped samples are counted (${stats.dropped})`);
  t.ok(Number(stats.writeQueue) <= 500, `the buffer stays within its bound (${stats.writeQueue})`);
  await ferret.up();
  t.equal(await stopChild(node), 0);
  const lines = node
    .output()
    .split('\n')
    .filter((l) => /write buffer full/.test(l));
  t.equal(lines.length, 1, 'logged once for the episode');
  await ferret.stop();
});
