// Every Redis key of one period has a bound on its life, so a period whose close never comes leaves
// nothing behind for ever; and a period still open when its keys may have expired (a cluster
// stopped for days) is closed from MongoDB's log after a rebuild, never from what is left in Redis.
import t from 'tap';
import { scanKeys } from '../../lib/shared/redis.js';
import { PERIOD_KEYS_TTL_MS } from '../../lib/shared/keys.js';
import { collectionNames } from '../../lib/storage/format/documents.js';
import { rebuildNow, sample, storageKit, MIN, type StorageKit } from '../helpers/storage.js';

const T0 = 1_764_576_000_000;
const BUCKET = 10 * MIN;
const DAY = 86_400_000;
const PKS = Array.from({ length: 20 }, (_, i) => 1_000_000 + i * 19);

async function fill(k: StorageKit, from: number, to: number): Promise<void> {
  for (let m = from; m < to; m++) await k.store(PKS.map((pk) => sample(pk, T0 + m * MIN, 3000 + (pk % 53) + m)));
}

/** Every key of the cluster whose name holds a period or interval start (`…:<epoch ms>…`). */
async function periodKeys(k: StorageKit): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of scanKeys(k.redis, `${k.cluster}:*`))
    out.push(...batch.filter((x) => /:\d{13}(:|$)/.test(x)));
  return out;
}

t.test('every key of a period expires, whether its period closed or not', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 14);
  k.clock.now = T0 + BUCKET + MIN;
  t.equal(await k.closer.closeDue(), 'closed');
  await k.rank();
  const keys = await periodKeys(k);
  t.ok(
    keys.some((x) => x.includes(`:o:${T0 + BUCKET}:`)),
    'the open period has buffers',
  );
  const forever: string[] = [];
  for (const key of keys) {
    const ttl = await k.redis.pttl(key);
    if (ttl < 0 || ttl > PERIOD_KEYS_TTL_MS) forever.push(`${key} (${ttl})`);
  }
  t.same(
    forever.slice(0, 5),
    [],
    `${forever.length} of the ${keys.length} keys of a period have no bound on their life`,
  );
});

t.test('a period not closed for days is closed from the log after a rebuild: nothing counted twice', async (t) => {
  // hour-long periods: the rebuild reads the log of every period since the layout began
  const k = await storageKit(t, { bucketMs: 6 * BUCKET, start: T0 });
  await fill(k, 0, 8);
  const before = await Promise.all(PKS.map((pk) => k.points(pk)));
  // the cluster stopped for 8 days: the period's keys in Redis expired, its log stayed in MongoDB
  for await (const batch of scanKeys(k.redis, `${k.cluster}:*${T0}*`)) for (const key of batch) await k.redis.del(key);
  k.clock.now = T0 + 8 * DAY;
  t.equal(await k.closer.runOnce(), 'waiting', 'the close waits for the rebuild');
  t.equal(await rebuildNow(k.rebuilder, k.redis, k.cluster, k.clock, k.layout.slices), 'rebuilt');
  t.equal(await k.closer.runOnce(), 'closed', 'then the period closes');
  t.ok(await k.db.listCollections({ name: collectionNames.buckets(T0) }).hasNext(), 'its buckets are written');
  const after = await Promise.all(PKS.map((pk) => k.points(pk)));
  const count = (lists: unknown[][]): number => lists.reduce((n, l) => n + l.length, 0);
  t.same(after, before, `every point is there: ${count(after)} of ${count(before)}`);
  const wrong: string[] = [];
  for (const [i, pk] of PKS.entries()) {
    const totals = await k.totals.read(pk);
    const sum = before[i]!.reduce((s, p) => s + p.f, 0);
    if (totals?.samples !== before[i]!.length || totals?.followerSum !== sum)
      wrong.push(`pk ${pk}: totals ${totals?.samples}/${totals?.followerSum}, points ${before[i]!.length}/${sum}`);
  }
  t.same(wrong, [], 'every running total equals its points');
});
