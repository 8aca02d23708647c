// Three nodes started together (as `demo` starts them) while an interval is under way: each pk is
// fetched once for that interval, however ownership moves while they join, and none is missed.
// Before, each node that joined fetched again every pk it gained whose slot had passed: about a
// quarter of the pks twice in the first interval.
import t from 'tap';
import { readMembers } from '../../lib/cluster/member-view.js';
import type { MemberCard } from '../../lib/cluster/card.js';
import { checkStore, range, startCluster, PK_MIN } from '../helpers/cluster.js';
import { intervalStart, sleep, until } from '../kit/wait.js';
import { stopChild } from '../kit/children.js';

const PKS = 3000;
const INTERVAL = 10_000;

async function activeCards(c: Awaited<ReturnType<typeof startCluster>>): Promise<MemberCard[]> {
  const cards = await readMembers(c.redis, c.svc.cluster);
  return cards.flatMap((x) => (x.ok && x.card.state === 'active' ? [x.card] : []));
}

t.test('three nodes started together mid-interval fetch each pk once in it, and miss none', async (t) => {
  const c = await startCluster(t, { pks: PKS, intervalMs: INTERVAL, ttlMs: 1500 });
  // started 2 s into an interval: they are active a second or two later, with a third of it gone
  const first = intervalStart(Date.now(), INTERVAL) + INTERVAL;
  await sleep(first + 2000 - Date.now());
  const nodes = ['s1', 's2', 's3'].map((id) => c.spawnNode(id));
  await until(async () => (await activeCards(c)).length === 3, 20_000, 'three active members');
  t.ok(Date.now() < first + INTERVAL, 'active within the interval they were started in');
  // the interval after: its samples/interval figure is the first interval's
  await sleep(first + INTERVAL + 3000 - Date.now());
  const cards = await activeCards(c);
  const duplicates = cards.reduce((a, card) => a + Number(card.stats.duplicates ?? 0), 0);
  const samples = cards.reduce((a, card) => a + Number(card.stats.samplesLastInterval ?? 0), 0);
  const skipped = cards.reduce((a, card) => a + Number(card.stats.handoverStored ?? 0), 0);
  t.comment(`first interval: ${samples} samples for ${PKS} pks, ${duplicates} refused as duplicates`);
  t.comment(`catch-ups not fetched because their last owner had stored them: ${skipped}`);
  t.ok(duplicates <= PKS * 0.01, `at most 1 % of the pks fetched twice (${duplicates} of ${PKS})`);
  t.ok(samples <= PKS * 1.01, `samples/interval counts each pk once (${samples} for ${PKS} pks)`);
  t.same(await Promise.all(nodes.map((n) => stopChild(n))), [0, 0, 0]);
  const check = await checkStore(c, range(PK_MIN, PKS), INTERVAL, first, first + INTERVAL);
  t.equal(check.gaps.length, 0, `no pk missed in the first interval (${check.gaps.length})`);
  t.equal(check.duplicates, 0, 'no point stored twice');
});
