// Three `influencer-node start` processes poll a few thousand pks every 2 s; one is stopped
// gracefully mid-run. Every pk must have exactly one point per interval and running totals equal
// to its points: no gap from joins or from the graceful leave, no duplicate, no double count.
import t from 'tap';
import { readMembers } from '../../lib/cluster/member-view.js';
import { checkStore, range, startCluster, PK_MIN } from '../helpers/cluster.js';
import { intervalStart, sleep, until } from '../kit/wait.js';
import { stopChild } from '../kit/children.js';

const PKS = 1500;
const INTERVAL = 2000;

t.test('three nodes, one graceful stop: one point per pk per interval, exact totals', async (t) => {
  const c = await startCluster(t, { pks: PKS, intervalMs: INTERVAL, ttlMs: 1500 });
  const nodes = ['a', 'b', 'c'].map((id) => c.spawnNode(id));
  await until(
    async () => {
      const cards = await readMembers(c.redis, c.svc.cluster);
      return (
        cards.length === 3 &&
        cards.every(
          (x) =>
            x.ok && x.card.state === 'active' && x.card.stats.owned !== undefined && Number(x.card.stats.owned) > 0,
        )
      );
    },
    30_000,
    'three active members owning pks',
  );
  const from = intervalStart(Date.now(), INTERVAL) + INTERVAL;
  await sleep(3 * INTERVAL);
  t.equal(await stopChild(nodes[2]), 0, 'the stopped node exits 0');
  await sleep(3 * INTERVAL);
  const to = intervalStart(Date.now(), INTERVAL);
  const codes = await Promise.all(nodes.slice(0, 2).map((n) => stopChild(n)));
  t.same(codes, [0, 0], 'the others exit 0 on SIGTERM');
  const check = await checkStore(c, range(PK_MIN, PKS), INTERVAL, from, to);
  t.ok((to - from) / INTERVAL >= 5, `window of ${(to - from) / INTERVAL} intervals`);
  t.same(check.gaps.slice(0, 10), [], `no missing (pk, interval) in the window (${check.gaps.length} missing)`);
  t.same(check.totalsMismatch.slice(0, 10), [], 'running totals equal the stored points for every pk');
  t.equal(check.malformed, 0);
  for (const n of nodes) t.notMatch(n.output(), /"level":(50|60)/, 'no error logged');
});
