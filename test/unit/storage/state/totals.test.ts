// The running totals against real servers: the latest username, late samples in the average, sums
// exact past 10^14, rank with ties, and reads that garbage in Redis or another cluster's name do not
// break.
import t from 'tap';
import { packTotals, unpackTotals } from '../../../../lib/storage/format/codec.js';
import { Totals } from '../../../../lib/storage/state/totals.js';
import { sample, storageKit, MIN } from '../../../helpers/storage.js';

const T0 = 1_764_576_000_000;
const at = (minute: number): number => T0 + minute * MIN;

t.test(
  'the latest username is kept: a renamed influencer gets the new one, a sample without one keeps the old',
  async (t) => {
    const k = await storageKit(t);
    await k.store([sample(7, at(0), 5000)]);
    await k.store([{ ...sample(7, at(1), 5100), username: 'renamed-7' }]);
    t.match(await k.totals.read(7), { samples: 2, username: 'renamed-7' }, 'a new username replaces the stored one');
    await k.store([{ ...sample(7, at(2), 5200), username: '' }]);
    t.match(
      await k.totals.read(7),
      { samples: 3, followerCount: 5200, username: 'renamed-7' },
      'a sample without a username keeps the known one',
    );
    await k.store([sample(7, at(3), 5300)]);
    t.match(await k.totals.read(7), { samples: 4, username: 'influencer-7' }, 'and a change back is stored too');
  },
);

t.test('an older sample arriving late counts in the average and may become the previous one', async (t) => {
  const k = await storageKit(t);
  await k.store([sample(5, at(50), 7000), sample(5, at(48), 6000)]);
  await k.store([sample(5, at(49), 6500)]);
  t.match(await k.totals.read(5), {
    samples: 3,
    followerSum: 19500,
    followerMin: 6000,
    latestAt: at(50),
    followerCount: 7000,
    previousAt: at(49),
    previousFollowerCount: 6500,
  });
  await k.rank();
  t.match(await k.totals.summary(), { influencers: 1, averageFollowers: 7000 });
});

t.test('follower sums stay exact past 10^14', async (t) => {
  const k = await storageKit(t);
  await k.store([sample(9, at(1), 4_000_000_000)]);
  // as if the pk had been tracked for a long time
  const stored = await k.redis.hgetBuffer(k.totals.keysOf(9).totals, '9');
  const totals = { ...unpackTotals(9, stored!), sum: 400_000_000_000_001, n: 100_000 };
  await k.redis.hset(k.totals.keysOf(9).totals, '9', packTotals(totals));
  await k.store([sample(9, at(2), 4_000_000_002), sample(9, at(3), 4_000_000_004)]);
  t.match(await k.totals.read(9), { samples: 100_002, followerSum: 400_008_000_000_007 });
});

t.test('rank: strictly higher counts + 1, ties share a rank', async (t) => {
  const k = await storageKit(t);
  await k.store([sample(1, at(1), 500), sample(2, at(1), 900), sample(3, at(1), 900), sample(4, at(1), 100)]);
  await k.rank();
  t.same(
    [await k.totals.rank(2), await k.totals.rank(3), await k.totals.rank(1), await k.totals.rank(4)],
    [1, 1, 3, 4],
  );
  t.equal(await k.totals.rank(99), null, 'unknown pk has no rank');
  await k.store([sample(4, at(2), 1000)]);
  t.same([await k.totals.rank(4)], [4], 'until the next snapshot the rank is that of the last one');
  await k.rank();
  t.same([await k.totals.rank(4), await k.totals.rank(2), await k.totals.rank(1)], [1, 2, 4]);
  t.match(await k.totals.summary(), { influencers: 4, averageFollowers: (500 + 900 + 900 + 1000) / 4 });
});

t.test("garbage in Redis and another cluster's name do not break reads", async (t) => {
  const k = await storageKit(t);
  await k.redis.hset(k.totals.keysOf(77).totals, '77', 'junk');
  t.equal(await k.totals.read(77), null, 'a hash without a sample count is no data');
  await k.store([sample(9, at(1), 5000)]);
  const elsewhere = new Totals(k.redis, 'another-cluster', k.layout.slices);
  t.equal(await elsewhere.read(9), null);
  t.same(await elsewhere.summary(), { influencers: 0, averageFollowers: null, rankedAt: null });
});
