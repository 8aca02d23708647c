// A period closed, its durable `closed` mark in MongoDB never written (the write failed, or the
// process died between the Redis marks and MongoDB), then Redis loses its data: the rebuild starts
// from checkpoints that hold the period, and the closer, which now reads MongoDB's older mark, closes
// the period again. Nothing may be counted twice, and the samples that were late the first time
// (in the log only) must not become points now.
import t from 'tap';
import { scanKeys } from '../../lib/shared/redis.js';
import { collectionNames } from '../../lib/storage/format/documents.js';
import { rebuildNow, sample, storageKit, totalsMismatches, MIN, type StorageKit } from '../helpers/storage.js';

const T0 = 1_764_576_000_000;
const BUCKET = 10 * MIN;
const PKS = Array.from({ length: 24 }, (_, i) => 1_000_000 + i * 13);
/** a pk with no point in the first period: its only sample of it comes late */
const LATE_ONLY = 1_000_999;

const value = (pk: number, minute: number): number => 5000 + ((pk * 31 + minute * 17) % 700);

async function fill(k: StorageKit, from: number, to: number): Promise<void> {
  for (let m = from; m < to; m++) await k.store(PKS.map((pk) => sample(pk, T0 + m * MIN, value(pk, m))));
}

async function loseRedis(k: StorageKit): Promise<void> {
  for await (const batch of scanKeys(k.redis, `${k.cluster}:*`)) for (const key of batch) await k.redis.del(key);
}

t.test(
  'a period closed again after Redis lost its data and MongoDB its closed mark counts nothing twice',
  async (t) => {
    const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
    await fill(k, 0, 13);
    k.clock.now = T0 + BUCKET + MIN;
    t.equal(await k.closer.closeDue(), 'closed', 'the first period closes');
    // samples of it that reach the log after its close began: late, in the log only
    const late = await k.store([sample(LATE_ONLY, T0 + 4 * MIN, 4444), sample(PKS[0]!, T0 + 9 * MIN + 1, 3333)]);
    t.equal(late.parts.length, 1);
    const before = await Promise.all(PKS.map((pk) => k.points(pk, T0, T0 + BUCKET)));
    // MongoDB's copy of the mark is as it was before the close: its write was lost
    await k.db.collection(collectionNames.meta).deleteOne({ _id: 'closed' as never });

    await loseRedis(k);
    k.clock.now = T0 + 14 * MIN;
    t.equal(await rebuildNow(k.rebuilder, k.redis, k.cluster, k.clock, k.layout.slices), 'rebuilt');
    await fill(k, 16, 20);
    k.clock.now = T0 + 2 * BUCKET + MIN;
    t.equal(await k.closer.closeDue(), 'closed', 'the first period is closed again, then the second');
    t.equal(Number(await k.redis.get(`${k.cluster}:closed`)), T0 + BUCKET, 'both are closed');

    t.same(
      await Promise.all(PKS.map((pk) => k.points(pk, T0, T0 + BUCKET))),
      before,
      "the first period's points are as they were",
    );
    t.same(await k.points(LATE_ONLY), [], 'a sample late the first time is no point now');
    t.same(await totalsMismatches(k, [...PKS, LATE_ONLY]), [], 'every running total equals its points');
    let leftover = 0;
    for await (const batch of scanKeys(k.redis, `${k.cluster}:*:o:${T0}:*`)) leftover += batch.length;
    t.equal(leftover, 0, 'no open buffer of the first period is left behind');
  },
);
