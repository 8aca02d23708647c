// The write path against real servers: idempotent batches, exact totals, rank, and the
// project's own connection code (Redis round trip, Mongo writes read back).
import t from 'tap';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { createLogger } from '../lib/log.js';
import { BatchWriter, collections, pointId, type PendingBatch, type Sample } from '../lib/store.js';
import { SampleWriter } from '../lib/sample-writer.js';
import { Totals } from '../lib/totals.js';
import { ClusterLock } from '../lib/locks.js';
import { TotalsRebuilder } from '../lib/rebuild.js';
import { connected } from './helpers/servers.js';

const log = createLogger('silent');

async function setup(t: Parameters<Parameters<typeof t.test>[1]>[0]) {
  const { redis, db, ...svc } = await connected(t, 'test');
  const totals = new Totals(redis, svc.cluster);
  t.equal(await new TotalsRebuilder(redis, db, new ClusterLock(redis, svc.cluster, log), svc.cluster, 60_000, log).runOnce(), 'ready', 'a new cluster starts its totals at 0');
  return { svc, redis, db, totals, writer: new BatchWriter(db, totals) };
}

const sample = (pk: number, minute: number, followers: number, following = 100): Sample => ({
  pk, at: minute * 60_000, username: `influencer-${pk}`, followerCount: followers, followingCount: following,
});

t.test('connection code: Redis round trip and Mongo writes read back', async (t) => {
  const { redis, db } = await setup(t);
  await redis.set('roundtrip', 'yes');
  t.equal(await redis.get('roundtrip'), 'yes');
  const col = db.collection<{ _id: string; n: number }>('conn');
  await col.bulkWrite([
    { updateOne: { filter: { _id: 'a' }, update: { $set: { n: 1 } }, upsert: true } },
    { updateOne: { filter: { _id: 'b' }, update: { $set: { n: 2 } }, upsert: true } },
  ], { ordered: false });
  t.same(await col.find({}).sort({ _id: 1 }).toArray(), [{ _id: 'a', n: 1 }, { _id: 'b', n: 2 }]);
});

t.test('a batch stores points and exact running totals', async (t) => {
  const { db, totals, writer } = await setup(t);
  const batch = BatchWriter.batch([sample(7, 100, 5000), sample(7, 101, 5200), sample(8, 100, 9000), sample(7, 102, 5100)]);
  await writer.write(batch);
  t.equal(batch.stored!.length, 4);
  t.same(batch.fresh!.sort(), [7, 8], 'pks seen for the first time');
  const t7 = await totals.read(7);
  t.match(t7, { samples: 3, followerSum: 15300, followerMin: 5000, followerMax: 5200, latestAt: 102 * 60_000, followerCount: 5100, followingCount: 100, username: 'influencer-7' });
  const { timeline, influencers } = collections(db);
  t.equal(await timeline.countDocuments({ pk: 7 }), 3);
  t.same((await influencers.find({}).sort({ _id: 1 }).toArray()).map((d) => d._id), [7, 8], 'one influencer document per pk');
  t.same(await totals.summary(), { influencers: 2, averageFollowers: 7050 }, 'average of latest counts across influencers');
});

t.test('the same samples written twice leave the data unchanged', async (t) => {
  const { db, totals, writer } = await setup(t);
  const samples = [sample(1, 10, 6000), sample(2, 10, 7000), sample(1, 11, 6100)];
  await writer.write(BatchWriter.batch(samples));
  const before = { t1: await totals.read(1), t2: await totals.read(2), rank: await totals.rank(1), summary: await totals.summary() };
  const again = BatchWriter.batch(samples.map((s) => ({ ...s, followerCount: s.followerCount + 999 })));
  await writer.write(again);
  t.equal(again.stored!.length, 0, 'nothing stored the second time');
  t.equal(again.duplicates, 3, 'each counted as a duplicate');
  t.same({ t1: await totals.read(1), t2: await totals.read(2), rank: await totals.rank(1), summary: await totals.summary() }, before);
  t.equal(await collections(db).timeline.countDocuments({}), 3);
  const p = await collections(db).timeline.findOne({ _id: pointId(1, 10 * 60_000) });
  t.equal(p?.f, 6000, 'the first value stays');
});

t.test('a retried batch is applied once: its own points are recognised, totals not doubled', async (t) => {
  const { totals, writer } = await setup(t);
  const batch = BatchWriter.batch([sample(3, 20, 8000), sample(4, 20, 8100)]);
  await writer.write(batch);
  // as if the answer to the first attempt had been lost: run every step again
  const replay = { ...batch, attempts: 1, stored: undefined, fresh: undefined, done: undefined };
  await writer.write(replay);
  t.equal(replay.stored!.length, 2, 'our own points count as stored, not duplicates');
  t.equal(replay.duplicates, 0);
  t.same(replay.fresh, [], 'the Lua step knows the batch token and does nothing');
  t.match(await totals.read(3), { samples: 1, followerSum: 8000 });
});

t.test('an older sample arriving late counts in the average but does not replace the latest', async (t) => {
  const { totals, writer } = await setup(t);
  await writer.write(BatchWriter.batch([sample(5, 50, 7000)]));
  await writer.write(BatchWriter.batch([sample(5, 49, 6000)]));
  t.match(await totals.read(5), { samples: 2, followerSum: 13000, followerMin: 6000, latestAt: 50 * 60_000, followerCount: 7000 });
  t.same(await totals.summary(), { influencers: 1, averageFollowers: 7000 });
});

t.test('batches written at once: inserts overlap, totals are applied in batch order', async (t) => {
  const { db, totals } = await setup(t);
  // the real writer, with the first batch held back before its insert
  let inProgress = 0;
  let maxInProgress = 0;
  let calls = 0;
  class HeldFirst extends BatchWriter {
    override async write(batch: PendingBatch, turn?: Promise<unknown>): Promise<void> {
      const first = calls++ === 0;
      maxInProgress = Math.max(maxInProgress, ++inProgress);
      try {
        if (first) await new Promise((r) => setTimeout(r, 800));
        await super.write(batch, turn);
      } finally {
        inProgress--;
      }
    }
  }
  const writer = new SampleWriter(new HeldFirst(db, totals), { flushMaxSamples: 2, flushMaxAgeMs: 50, bufferMaxSamples: 1000, writeConcurrency: 3 }, log);
  const order: number[] = [];
  writer.on('batch', (b: { stored: Sample[] }) => order.push(b.stored[0]!.at / 60_000));
  // three batches of pks 1 and 2: minutes 10, 11, 12
  for (const minute of [10, 11, 12]) for (const pk of [1, 2]) writer.add(sample(pk, minute, 1000 * pk + minute));
  t.ok(await writer.flushAll(10_000), 'everything written');
  t.equal(maxInProgress, 3, 'three batches in flight at once');
  t.same(order, [10, 11, 12], 'each batch completes after the one made before it');
  for (const pk of [1, 2]) {
    t.match(await totals.read(pk), { samples: 3, followerSum: 3 * 1000 * pk + 33, latestAt: 12 * 60_000, followerCount: 1000 * pk + 12, previousFollowerCount: 1000 * pk + 11, previousAt: 11 * 60_000 },
      `pk ${pk}: latest and previous as if written one batch at a time`);
  }
  t.equal(await collections(db).timeline.countDocuments({}), 6);
  writer.close();
});

t.test('follower sums stay exact past 10^14', async (t) => {
  const { totals, writer } = await setup(t);
  await writer.write(BatchWriter.batch([sample(9, 1, 400_000_000_000_001), sample(9, 2, 400_000_000_000_002)]));
  await writer.write(BatchWriter.batch([sample(9, 3, 400_000_000_000_004)]));
  t.match(await totals.read(9), { samples: 3, followerSum: 1_200_000_000_000_007, followerMin: 400_000_000_000_001, followerMax: 400_000_000_000_004 });
});

t.test('rank: strictly higher counts + 1, ties share a rank', async (t) => {
  const { totals, writer } = await setup(t);
  await writer.write(BatchWriter.batch([sample(1, 1, 500), sample(2, 1, 900), sample(3, 1, 900), sample(4, 1, 100)]));
  t.same([await totals.rank(2), await totals.rank(3), await totals.rank(1), await totals.rank(4)], [1, 1, 3, 4]);
  t.equal(await totals.rank(99), null, 'unknown pk has no rank');
  // the latest count moves, the rank follows
  await writer.write(BatchWriter.batch([sample(4, 2, 1000)]));
  t.same([await totals.rank(4), await totals.rank(2), await totals.rank(1)], [1, 2, 4]);
  t.same(await totals.summary(), { influencers: 4, averageFollowers: (500 + 900 + 900 + 1000) / 4 });
});

t.test('Redis and Mongo data from elsewhere does not break reads', async (t) => {
  const { redis, svc, totals } = await setup(t);
  await redis.hset(`${svc.cluster}:inf:77`, 'junk', 'x');
  t.equal(await totals.read(77), null, 'a hash without a sample count is no data');
  const other = new Redis(svc.redisUrl);
  t.teardown(() => other.disconnect());
  t.equal(await other.ping(), 'PONG');
});

t.test('a client of another cluster name sees none of these totals', async (t) => {
  const { redis, writer } = await setup(t);
  await writer.write(BatchWriter.batch([sample(9, 1, 5000)]));
  const elsewhere = new Totals(redis, 'another-cluster');
  t.equal(await elsewhere.read(9), null);
  t.same(await elsewhere.summary(), { influencers: 0, averageFollowers: null });
});

t.test('MongoClient sees the points (used by show and the API)', async (t) => {
  const { svc, writer } = await setup(t);
  await writer.write(BatchWriter.batch([sample(11, 5, 5555)]));
  const client = new MongoClient(svc.mongoUrl);
  t.teardown(() => client.close());
  const doc = await client.db(svc.mongoDb).collection('timeline').findOne({ pk: 11 });
  t.match(doc, { pk: 11, f: 5555, g: 100 });
});
