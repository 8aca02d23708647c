// What the read side holds of the ranking snapshots: read again at most once a recheck, and while a
// newer read is under way the snapshots held answer at once (at most one recheck old), so a reload
// never holds the requests of its moment; a reload asked by hand is waited for.
import t from 'tap';
import { Rankings } from '../../../../lib/storage/state/ranking.js';
import { sample, storageKit, MIN } from '../../../helpers/storage.js';

const T0 = 1_764_576_000_000;

t.test('the snapshots held answer while newer ones load', async (t) => {
  const k = await storageKit(t, { start: T0 });
  await k.store([sample(1_000_001, T0, 500), sample(1_000_002, T0, 300)]);
  await k.rank();
  const clock = { now: T0 };
  const rankings = new Rankings(k.redis, k.cluster, k.layout.slices, 1000, () => clock.now);
  t.equal((await rankings.summary()).influencers, 2, 'the first question waits for the snapshots');
  t.equal(await rankings.rank(1_000_002), 2);

  await k.store([sample(1_000_003, T0 + MIN, 900)]);
  await k.rank();
  t.equal((await rankings.summary()).influencers, 2, 'within the recheck: the snapshots held');
  clock.now += 1000;
  const first = await rankings.summary();
  t.equal(first.influencers, 2, 'the recheck is due: answered from the snapshots held, not held for the reload');
  // the reload it began lands shortly
  let now = first;
  for (let i = 0; i < 100 && now.influencers === 2; i++) {
    await new Promise((r) => setTimeout(r, 20));
    clock.now += 1000;
    now = await rankings.summary();
  }
  t.equal(now.influencers, 3, 'the newer snapshots answer once read');
  t.equal(await rankings.rank(1_000_002), 3, 'and the rank follows them');

  await k.store([sample(1_000_004, T0 + 2 * MIN, 100)]);
  await k.rank();
  rankings.reload();
  t.equal((await rankings.summary()).influencers, 4, 'after reload() the next question waits for the snapshots');
});

t.test('with a recheck of 0 every question reads the snapshots first', async (t) => {
  const k = await storageKit(t, { start: T0 });
  await k.store([sample(1_000_001, T0, 500)]);
  await k.rank();
  const rankings = new Rankings(k.redis, k.cluster, k.layout.slices, 0);
  t.equal((await rankings.summary()).influencers, 1);
  await k.store([sample(1_000_002, T0 + MIN, 700)]);
  await k.rank();
  t.equal((await rankings.summary()).influencers, 2);
  t.equal(await rankings.rank(1_000_001), 2);
});
