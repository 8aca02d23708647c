// Closing a period: buckets, checkpoints and rollups written from the open buffers, the buffers
// deleted, the same points read before and after; the close waits for late loggers, and two nodes
// closing at once or a close repeated change nothing.
import t from 'tap';
import { PeriodCloser } from '../../../../lib/storage/jobs/closer.js';
import { decodeBucket, decodeCheckpoint, decodeRollup } from '../../../../lib/storage/format/codec.js';
import { ClusterLock } from '../../../../lib/cluster/locks.js';
import { createLogger } from '../../../../lib/shared/log.js';
import { clusterKeys, memberIndexKey, nodeKey, SLICE_MARKS, sliceKeys } from '../../../../lib/shared/keys.js';
import { sample, storageKit, MIN } from '../../../helpers/storage.js';
import {
  type PayloadDoc,
  type CheckpointDoc,
  collectionNames,
  docIds,
} from '../../../../lib/storage/format/documents.js';

const T0 = 1_764_576_000_000;
const BUCKET = 10 * MIN;
const log = createLogger('silent');

/** Every minute from `from` for `minutes`, for each pk, with a deterministic walk. */
function walk(pks: number[], from: number, minutes: number) {
  return pks.flatMap((pk) =>
    Array.from({ length: minutes }, (_, m) =>
      sample(pk, from + m * MIN, 1000 * pk + ((m * 37 + pk * 11) % 97), 50 + (m % 5)),
    ),
  );
}

t.test('a closed period: buckets and a checkpoint from the open buffers, which are deleted', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  const pks = [1_000_001, 1_000_002, 1_000_003];
  const data = walk(pks, T0, 20);
  await k.store(data);
  const before = await Promise.all(pks.map((pk) => k.points(pk)));
  t.equal(await k.closer.runOnce(), 'idle', 'nothing is due before the period ends');
  k.clock.now = T0 + BUCKET + MIN;
  t.equal(await k.closer.runOnce(), 'closed', 'the first period closes');
  t.equal(await k.closer.runOnce(), 'idle', 'the second is still open');
  const keys = clusterKeys(k.cluster);
  const own = k.totals.keysOf(pks[0]!);
  t.equal(await k.redis.exists(own.open(T0, pks[0]!)), 0, 'its open buffers are gone');
  t.equal(await k.redis.exists(own.open(T0 + BUCKET, pks[0]!)), 1, "the next period's stay");
  const bucket = await k.db
    .collection<PayloadDoc>(collectionNames.buckets(T0))
    .findOne({ _id: docIds.bucket(pks[0]!, T0) });
  t.same(decodeBucket(T0, bucket!.b.buffer), before[0]!.slice(0, 10), "the bucket holds the period's points");
  t.same(await Promise.all(pks.map((pk) => k.points(pk))), before, 'the reader sees the same points');
  const cp = await k.db
    .collection<CheckpointDoc>(collectionNames.checkpoints)
    .findOne({ _id: docIds.checkpoint(T0, k.layout.slice(pks[0]!)) });
  const { totals } = decodeCheckpoint(T0 + BUCKET, cp!.b.buffer);
  const first = data.filter((s) => s.pk === pks[0] && s.at < T0 + BUCKET);
  t.match(
    totals.find((x) => x.pk === pks[0]),
    { n: 10, sum: first.reduce((a, s) => a + s.followerCount, 0), at: T0 + 9 * MIN, username: `influencer-${pks[0]}` },
  );
  k.clock.now = T0 + 2 * BUCKET + MIN;
  t.equal(await k.closer.closeDue(), 'closed');
  const cp2 = await k.db
    .collection<CheckpointDoc>(collectionNames.checkpoints)
    .findOne({ _id: docIds.checkpoint(T0 + BUCKET, k.layout.slice(pks[0]!)) });
  t.match(
    decodeCheckpoint(T0 + 2 * BUCKET, cp2!.b.buffer).totals.find((x) => x.pk === pks[0]),
    { n: 20, at: T0 + 19 * MIN },
    'the next checkpoint adds its bucket to the previous',
  );
  t.equal(Number(await k.redis.get(keys.closed)), T0 + BUCKET, 'the closed mark moved');
});

t.test('24 closed buckets make a rollup: a week or a month is read from rollups', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  const pk = 1_000_005;
  const data = walk([pk], T0, 240);
  for (let i = 0; i < data.length; i += 50) await k.store(data.slice(i, i + 50));
  const points = await k.points(pk, T0, T0 + 24 * BUCKET);
  t.equal(points.length, 240);
  k.clock.now = T0 + 24 * BUCKET + MIN;
  await k.closer.closeDue();
  const doc = await k.db.collection<PayloadDoc>(collectionNames.rollups(T0)).findOne({ _id: docIds.rollup(pk, T0) });
  t.ok(doc, 'the rollup is written when its last bucket closes');
  const rolled = decodeRollup(T0, doc!.b.buffer);
  t.equal(rolled.length, 24);
  const third = points.slice(20, 30);
  t.same(rolled[2], {
    at: T0 + 2 * BUCKET,
    s: {
      n: 10,
      sum: third.reduce((a, p) => a + p.f, 0),
      min: Math.min(...third.map((p) => p.f)),
      max: Math.max(...third.map((p) => p.f)),
      lastF: third[9]!.f,
      lastG: third[9]!.g,
    },
  });
  t.same(await k.reader.buckets(pk, T0, T0 + 24 * BUCKET), rolled, 'the reader answers from the rollup');
  t.same(await k.reader.points(pk, T0, T0 + 24 * BUCKET), points, 'and the buckets still hold every point');
});

t.test('the close waits for a live member still logging the period, for at most one more period', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await k.store(walk([1_000_001], T0, 3));
  const end = T0 + BUCKET;
  const card = {
    format: 1,
    id: 'slow',
    host: 'h',
    pid: 1,
    version: '0',
    weight: 1,
    state: 'active',
    started: T0,
    heartbeat: end + MIN,
    ttlMs: 10 * BUCKET,
    view: '',
    stats: { loggedThrough: end - MIN },
  };
  await k.redis.set(nodeKey(k.cluster, 'slow'), JSON.stringify(card), 'PX', 60_000);
  await k.redis.sadd(memberIndexKey(k.cluster), 'slow');
  k.clock.now = end + MIN + 1;
  t.equal(await k.closer.runOnce(), 'waiting', 'a member says it has samples of the period not yet logged');
  await k.redis.set(
    nodeKey(k.cluster, 'slow'),
    JSON.stringify({ ...card, stats: { loggedThrough: end } }),
    'PX',
    60_000,
  );
  t.equal(await k.closer.runOnce(), 'closed', 'it has logged them');
});

t.test('two nodes closing at once, and a close repeated, write each document once', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0, pkMax: 1_040_000 });
  t.ok(k.layout.slices > 1, `${k.layout.slices} slices`);
  const pks = Array.from({ length: 40 }, (_, i) => 1_000_000 + i * 997);
  await k.store(walk(pks, T0, 10));
  // a second node: its own lock
  const lock = new ClusterLock(k.redis, k.cluster, log);
  const other = new PeriodCloser({ ...k.deps, totals: k.totals, lock }, { graceMs: 0, now: () => k.clock.now });
  k.clock.now = T0 + BUCKET + MIN;
  const outcomes = await Promise.all([k.closer.closeDue(), other.closeDue()]);
  t.ok(outcomes.includes('closed'), `outcomes ${outcomes.join(', ')}`);
  await k.closer.closeDue();
  await other.closeDue();
  t.equal(await k.db.collection(collectionNames.buckets(T0)).countDocuments({}), 40, 'one bucket per pk');
  t.equal(
    await k.db.collection(collectionNames.checkpoints).countDocuments({}),
    k.layout.slices,
    'one checkpoint per slice',
  );
  // as if the marks had been lost after the documents were written: the close runs again
  const keys = clusterKeys(k.cluster);
  for (const key of [keys.closed, keys.closedSlices(T0)]) await k.redis.del(key);
  for (let s = 0; s < k.layout.slices; s++)
    await k.redis.hdel(sliceKeys(k.cluster, k.layout.slices, s).marks, SLICE_MARKS.closing);
  await k.db.collection(collectionNames.meta).deleteOne({ _id: 'closed' as never });
  await k.closer.closeDue();
  t.equal(await k.db.collection(collectionNames.buckets(T0)).countDocuments({}), 40, 'still one bucket per pk');
  for (const pk of pks.slice(0, 5)) t.equal((await k.points(pk)).length, 10, `pk ${pk}: its 10 points`);
});

t.test("a sample older than the layout's first period is left out: totals and timeline stay equal", async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  t.equal(k.layout.firstPeriod, T0, "the layout begins at the clock's period");
  const pk = 1_000_005;
  // a node that gained the pk just after the layout began catches up the interval before it
  const batch = await k.store([
    sample(pk, T0 - MIN, 900, 10),
    sample(pk, T0, 1000, 10),
    sample(pk, T0 + MIN, 1100, 10),
  ]);
  t.equal(batch.beforeLayout, 1, 'the older sample is counted as left out');
  const totals = await k.totals.read(pk);
  const points = await k.points(pk);
  t.same(
    points.map((p) => p.at),
    [T0, T0 + MIN],
    'the timeline has the two samples of the layout',
  );
  t.equal(totals?.samples, 2, 'the totals count the same two');
  t.equal(totals?.followerSum, 2100);
  const logs = (await k.db.listCollections({}, { nameOnly: true }).toArray())
    .map((c) => c.name)
    .filter((n) => n === collectionNames.log(T0 - BUCKET));
  t.same(logs, [], 'nothing logged in the period before the layout');
});
