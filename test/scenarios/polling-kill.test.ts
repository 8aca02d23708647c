// SIGKILL of one of three nodes: its key expires and the others take its pks over within
// HEARTBEAT_TTL_MS + 2 s; each pk it owned misses at most one interval.
import t from 'tap';
import { readMembers } from '../../lib/cluster/member-view.js';
import { checkStore, range, startCluster, PK_MIN } from '../helpers/cluster.js';
import { intervalStart, sleep, until } from '../kit/wait.js';
import { stopChild } from '../kit/children.js';

const PKS = 1200;
const INTERVAL = 4000;
const TTL = 1500;

t.test('SIGKILL of a node: at most one missed interval per pk, taken over within TTL + 2 s', async (t) => {
  const c = await startCluster(t, { pks: PKS, intervalMs: INTERVAL, ttlMs: TTL });
  const nodes = ['a', 'b', 'c'].map((id) => c.spawnNode(id));
  await until(
    async () => {
      const cards = await readMembers(c.redis, c.svc.cluster);
      return (
        cards.length === 3 && cards.every((x) => x.ok && x.card.state === 'active' && Number(x.card.stats.owned) > 0)
      );
    },
    30_000,
    'three active members owning pks',
  );
  const from = intervalStart(Date.now(), INTERVAL) + INTERVAL;
  await sleep(2 * INTERVAL);
  nodes[2].kill('SIGKILL');
  const killedAt = Date.now();
  // the survivors own the whole universe again
  const tookMs = await until(
    async () => {
      const cards = await readMembers(c.redis, c.svc.cluster);
      const owned = cards.reduce((sum, x) => sum + (x.ok ? Number(x.card.stats.owned) : 0), 0);
      return cards.length === 2 && owned === PKS;
    },
    TTL + 10_000,
    'survivors owning every pk',
  );
  t.ok(tookMs <= TTL + 2000, `taken over ${tookMs} ms after the kill (TTL ${TTL} ms + 2 s allowed)`);
  await sleep(Math.max(0, killedAt + 3 * INTERVAL - Date.now()));
  const to = intervalStart(Date.now(), INTERVAL);
  t.same(await Promise.all(nodes.slice(0, 2).map((n) => stopChild(n))), [0, 0]);
  const check = await checkStore(c, range(PK_MIN, PKS), INTERVAL, from, to);
  const worst = Math.max(0, ...check.gapsPerPk.values());
  t.ok(worst <= 1, `at most one missed interval per pk (worst ${worst}; ${check.gapsPerPk.size} pks missed one)`);
  // not asserted here: a node killed between inserting a batch's points and applying them to the
  // running totals leaves those points out of the totals (README, "Failure behaviour")
  t.equal(check.malformed, 0);
});
