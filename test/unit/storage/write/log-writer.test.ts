// The log writer against real servers: a batch is logged (durable), then applied once to the running
// totals and the open buffers; repeats of a (pk, interval) are refused wherever they come from; a sample
// that reaches Redis after its period's close began is late. A batch's token is its log document's
// `_id` and what the period's reconcile skips once applied: two batches with one token would lose one
// of them as "already stored". Tokens name the node, its process and a counter, so no two batches
// share one, whatever the random source does.
import t from 'tap';
import * as crypto from 'node:crypto';
import { decodeLog } from '../../../../lib/storage/format/codec.js';
import { LogWriter } from '../../../../lib/storage/write/log-writer.js';
import type { LogWriter as LogWriterClass } from '../../../../lib/storage/write/log-writer.js';
import { collections, collectionNames, type LogDoc } from '../../../../lib/storage/format/documents.js';
import { sample, storageKit, HOUR, MIN } from '../../../helpers/storage.js';

const T0 = 1_764_576_000_000;
const at = (minute: number): number => T0 + minute * MIN;
const BUCKET = 10 * MIN;
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

t.test('two nodes writing at once never share a token, even if the random source repeats itself', async (t) => {
  // the random source of every batch forced to one value: what a collision of random tokens looks like
  const { LogWriter } = await t.mockImport<{ LogWriter: typeof LogWriterClass }>(
    '../../../../lib/storage/write/log-writer.js',
    {
      'node:crypto': { ...crypto, randomInt: () => 12_345, randomBytes: () => Buffer.alloc(16, 7) },
    },
  );
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  const a = new LogWriter(k.db, k.totals, k.layout, 'node-a');
  const b = new LogWriter(k.db, k.totals, k.layout, 'node-b');
  const fromA = [sample(1_000_001, T0, 100), sample(1_000_001, T0 + MIN, 110)];
  const fromB = [sample(1_000_002, T0, 200), sample(1_000_002, T0 + MIN, 220)];
  // node a logs its batch and dies before applying it; node b stores its batch whole
  const batchA = a.batch(fromA);
  await a.log(batchA);
  const batchB = b.batch(fromB);
  await b.log(batchB);
  await b.apply(batchB);
  t.not(batchA.token, batchB.token, 'the two batches have different tokens');
  const again = a.batch(fromA);
  t.not(again.token, batchA.token, 'and a node never repeats its own');

  k.clock.now = T0 + BUCKET + MIN;
  t.equal(await k.closer.closeDue(), 'closed');
  for (const [pk, samples] of [
    [1_000_001, fromA],
    [1_000_002, fromB],
  ] as const) {
    const points = await k.points(pk);
    t.same(
      points.map((p) => [p.at, p.f]),
      samples.map((s) => [s.at, s.followerCount]),
      `pk ${pk}: every sample is a point`,
    );
    t.match(
      await k.totals.read(pk),
      { samples: samples.length, followerSum: samples.reduce((s, x) => s + x.followerCount, 0) },
      `pk ${pk}: counted once`,
    );
  }
});
