// The write path against real servers: a batch is logged (durable), then applied once to the
// running totals and the open buffers; repeats of a (pk, interval) are refused wherever they come
// from; the totals stay exact; the log goes on while Redis is down.
import t from 'tap';
import { Binary } from 'mongodb';
import { createLogger } from '../lib/shared/log.js';
import { SampleWriter } from '../lib/storage/write/sample-writer.js';
import { decodeLog, encodeLog, packTotals, unpackTotals } from '../lib/storage/format/codec.js';
import { LogWriter } from '../lib/storage/write/log-writer.js';
import { collections, type Sample, collectionNames, type LogDoc } from '../lib/storage/format/documents.js';
import { Totals } from '../lib/storage/state/totals.js';
import { sample, storageKit, HOUR, MIN } from './helpers/storage.js';
import { until, sleep } from './kit/wait.js';
import { clusterKeys } from '../lib/shared/keys.js';

const log = createLogger('silent');
const T0 = 1_764_576_000_000;
const at = (minute: number): number => T0 + minute * MIN;
const averages = ({ influencers, averageFollowers }: { influencers: number; averageFollowers: number | null }) => ({
  influencers,
  averageFollowers,
});

t.test('a batch is logged, then applied: exact totals, open buffers, one influencer document per pk', async (t) => {
  const k = await storageKit(t);
  const batch = await k.store([
    sample(7, at(0), 5000),
    sample(7, at(1), 5200),
    sample(8, at(0), 9000),
    sample(7, at(2), 5100),
  ]);
  t.same(batch.fresh.sort(), [7, 8], 'pks seen for the first time');
  t.match(await k.totals.read(7), {
    samples: 3,
    followerSum: 15300,
    followerMin: 5000,
    followerMax: 5200,
    latestAt: at(2),
    followerCount: 5100,
    previousFollowerCount: 5200,
    username: 'influencer-7',
  });
  await k.rank();
  t.match(
    await k.totals.summary(),
    { influencers: 2, averageFollowers: 7050 },
    'average of latest counts across influencers',
  );
  t.same(
    (await k.points(7)).map((p) => [p.at, p.f]),
    [
      [at(0), 5000],
      [at(1), 5200],
      [at(2), 5100],
    ],
    'the open buffer holds the points',
  );
  const logDocs = await k.db.collection<LogDoc>(collectionNames.log(T0)).find({}).toArray();
  t.equal(logDocs.length, 1, 'one log document for the batch');
  t.same(
    decodeLog(T0, logDocs[0]!.b.buffer).map((s) => [s.pk, s.at, s.f, s.g]),
    [
      [7, at(0), 5000, 100],
      [7, at(1), 5200, 100],
      [7, at(2), 5100, 100],
      [8, at(0), 9000, 100],
    ],
  );
  t.same(
    (await collections(k.db).influencers.find({}).sort({ _id: 1 }).toArray()).map((d) => d._id),
    [7, 8],
  );
});

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

t.test('a batch spanning two periods is two log documents', async (t) => {
  const k = await storageKit(t);
  await k.store([sample(1, at(59), 100), sample(1, at(60), 101)]);
  t.equal(await k.db.collection(collectionNames.log(T0)).countDocuments({}), 1);
  t.equal(await k.db.collection(collectionNames.log(T0 + HOUR)).countDocuments({}), 1);
  t.match(await k.totals.read(1), { samples: 2, latestAt: at(60) });
});

t.test('repeats of a (pk, interval) are refused: the first sample is the point, in totals and buffer', async (t) => {
  const k = await storageKit(t);
  await k.store([sample(1, at(10), 6000), sample(2, at(10), 7000), sample(1, at(11), 6100)]);
  await k.rank();
  const before = {
    t1: await k.totals.read(1),
    t2: await k.totals.read(2),
    rank: await k.totals.rank(1),
    summary: averages(await k.totals.summary()),
  };
  // another node polled the same intervals (a membership change): other values, same (pk, interval)
  const other = await k.store(
    [sample(1, at(10), 6999), sample(2, at(10), 7999), sample(1, at(11), 6199)],
    k.otherWriter('node-b'),
  );
  t.equal(other.repeats, 3, 'each counted as a repeat');
  await k.rank();
  t.same(
    {
      t1: await k.totals.read(1),
      t2: await k.totals.read(2),
      rank: await k.totals.rank(1),
      summary: averages(await k.totals.summary()),
    },
    before,
  );
  t.same(
    (await k.points(1)).map((p) => p.f),
    [6000, 6100],
    'the first values stay',
  );
  // an older interval arriving after a newer one, then repeated: the buffer decides
  await k.store([sample(1, at(5), 5000)]);
  const again = await k.store([sample(1, at(5), 5555)], k.otherWriter('node-c'));
  t.equal(again.repeats, 1);
  t.same(
    (await k.points(1)).map((p) => p.f),
    [5000, 6000, 6100],
  );
  t.match(await k.totals.read(1), { samples: 3, followerSum: 17100, latestAt: at(11), previousAt: at(10) });
});

t.test('a retried batch is applied once: the log insert and the Lua step find every sample stored', async (t) => {
  const k = await storageKit(t);
  const batch = await k.store([sample(3, at(20), 8000), sample(4, at(20), 8100)]);
  // as if the answers to the first attempt had been lost: every step again
  const replay = {
    ...batch,
    parts: batch.parts.map((p) => ({ ...p, logged: false, outcomes: new Map(), marked: false })),
    repeats: 0,
    fresh: [],
    registered: false,
  };
  await k.writer.log(replay);
  await k.writer.apply(replay);
  t.same(
    replay.parts.map((p) => LogWriter.outcome(replay, p)),
    ['applied'],
  );
  t.equal(replay.repeats, 2, 'the Lua step finds both samples stored and changes nothing');
  t.equal(await k.db.collection(collectionNames.log(T0)).countDocuments({}), 1, 'one log document');
  t.match(await k.totals.read(3), { samples: 1, followerSum: 8000 });
});

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

t.test("a log document no node applied is applied by the period's reconcile, once", async (t) => {
  const k = await storageKit(t, { start: T0 });
  await k.store([sample(1, at(1), 100)]);
  // a node that died between its log insert and its Lua step
  const dead = k.otherWriter('node-dead');
  const orphan = dead.batch([sample(1, at(2), 110), sample(2, at(2), 220)]);
  await dead.log(orphan);
  t.match(await k.totals.read(1), { samples: 1 }, 'not counted yet');
  k.clock.now = T0 + HOUR + MIN + 1;
  t.equal(await k.closer.closeDue(), 'closed');
  t.match(await k.totals.read(1), { samples: 2, followerSum: 210, latestAt: at(2) }, 'counted once by the reconcile');
  t.match(await k.totals.read(2), { samples: 1, followerSum: 220 });
  t.same(
    (await k.points(1)).map((p) => p.f),
    [100, 110],
    'and in the bucket',
  );
});

t.test("a sample that reaches Redis after its period's close began is late: in the log only", async (t) => {
  const k = await storageKit(t, { start: T0 });
  await k.store([sample(1, at(1), 100)]);
  k.clock.now = T0 + HOUR + MIN + 1;
  await k.closer.closeDue();
  const late = await k.store([sample(1, at(3), 130)]);
  t.same(
    late.parts.map((p) => LogWriter.outcome(late, p)),
    ['late'],
  );
  t.equal(LogWriter.count(late, 'late'), 1);
  t.match(await k.totals.read(1), { samples: 1 }, 'not in the totals');
  t.same(
    (await k.points(1)).map((p) => p.f),
    [100],
    'not in the timeline',
  );
  t.equal(await k.db.collection(collectionNames.log(T0)).countDocuments({}), 2, 'but durable in the log');
});

t.test('SampleWriter: batches logged at once, applied in the order they were made', async (t) => {
  const k = await storageKit(t);
  let logging = 0;
  let maxLogging = 0;
  let calls = 0;
  class HeldFirst extends LogWriter {
    override async log(batch: Parameters<LogWriter['log']>[0]): Promise<void> {
      const first = calls++ === 0;
      maxLogging = Math.max(maxLogging, ++logging);
      try {
        if (first) await sleep(800);
        await super.log(batch);
      } finally {
        logging--;
      }
    }
  }
  const writer = new SampleWriter(
    new HeldFirst(k.db, k.totals, k.layout, 'node-a'),
    { flushMaxSamples: 2, flushMaxAgeMs: 50, bufferMaxSamples: 1000, writeConcurrency: 3 },
    log,
  );
  const logged: number[] = [];
  writer.on('batch', (b: { stored: Sample[] }) => logged.push((b.stored[0]!.at - T0) / MIN));
  for (const minute of [10, 11, 12]) for (const pk of [1, 2]) writer.add(sample(pk, at(minute), 1000 * pk + minute));
  t.ok(await writer.flushAll(10_000), 'everything logged');
  t.equal(maxLogging, 3, 'three batches logged at once');
  t.same([logged.length, logged[2]], [3, 10], 'the held batch was logged last');
  for (const pk of [1, 2]) {
    t.match(
      await k.totals.read(pk),
      {
        samples: 3,
        followerSum: 3 * 1000 * pk + 33,
        latestAt: at(12),
        followerCount: 1000 * pk + 12,
        previousFollowerCount: 1000 * pk + 11,
      },
      `pk ${pk}`,
    );
  }
  t.equal(writer.oldestUnlogged(), null, 'nothing left unlogged');
  await writer.stop(0);
});

t.test('SampleWriter: while Redis fails the log goes on; the Lua step catches up when it is back', async (t) => {
  const k = await storageKit(t);
  class RedisDown extends LogWriter {
    down = true;
    override async apply(batch: Parameters<LogWriter['apply']>[0]): Promise<void> {
      if (this.down) throw new Error('Redis down');
      await super.apply(batch);
    }
  }
  const inner = new RedisDown(k.db, k.totals, k.layout, 'node-a');
  const writer = new SampleWriter(
    inner,
    { flushMaxSamples: 2, flushMaxAgeMs: 20, bufferMaxSamples: 1000, writeConcurrency: 2 },
    log,
  );
  for (const minute of [1, 2, 3]) for (const pk of [1, 2]) writer.add(sample(pk, at(minute), 100 * minute + pk));
  t.ok(await writer.flushAll(5000), 'every sample logged though Redis is down');
  t.equal(writer.length, 0);
  t.equal(writer.pendingApply, 6, 'six samples wait for the Lua step');
  t.equal(await k.totals.read(1), null, 'not counted yet');
  inner.down = false;
  await sleep(6000);
  t.equal(writer.pendingApply, 0, 'applied once Redis answers');
  t.match(await k.totals.read(1), { samples: 3 });
  await writer.stop(0);
});

t.test(
  "SampleWriter: samples older than the layout's first period are counted late and leave nothing waiting",
  async (t) => {
    const k = await storageKit(t);
    const writer = new SampleWriter(
      new LogWriter(k.db, k.totals, k.layout, 'node-a'),
      { flushMaxSamples: 4, flushMaxAgeMs: 20, bufferMaxSamples: 1000, writeConcurrency: 2 },
      log,
    );
    const first = k.layout.firstPeriod;
    for (const pk of [1, 2]) writer.add(sample(pk, first - MIN, 100 + pk));
    for (const pk of [1, 2]) writer.add(sample(pk, first, 200 + pk));
    t.ok(await writer.flushAll(5000), 'everything written');
    await until(() => writer.pendingApply === 0, 5000, 'the Lua steps done');
    t.equal(writer.pendingApply, 0, 'nothing left waiting for the Lua step');
    t.equal(writer.counters.late, 2, 'the two older samples counted late');
    t.equal(writer.counters.stored, 2, 'the two of the layout stored');
    t.match(await k.totals.read(1), { samples: 1, followerSum: 201 });
    await writer.stop(0);
  },
);

t.test('a log document from elsewhere is not trusted blindly', async (t) => {
  const k = await storageKit(t, { start: T0 });
  const logs = k.db.collection<LogDoc>(collectionNames.log(T0));
  await logs.insertOne({ _id: 'garbage', n: 'x', c: 1, b: new Binary(Buffer.from([7, 7, 7])) });
  await logs.insertOne({
    _id: 'good',
    n: 'x',
    c: 1,
    b: new Binary(encodeLog(T0, [{ pk: 3, at: at(1), f: 30, g: 3 }])),
  });
  k.clock.now = T0 + HOUR + MIN + 1;
  t.equal(await k.closer.closeDue(), 'closed', 'the period closes without the corrupt document');
  t.equal(await k.redis.hlen(clusterKeys(k.cluster).quarantined), 1, 'which is quarantined, not skipped silently');
  t.match(await k.totals.read(3), { samples: 1, followerSum: 30 }, 'the good one is applied');
});
