// The close against what runs beside it: a sample applied while the closer looks for a period's log,
// a rebuild wiping a slice while the closer reads it, a closer that stalls in the middle of a
// slice while other nodes close that period and the next, and one whose checkpoint is written after
// a rebuild of its slice looked for it. None may leave an open buffer behind, skip a slice, move a
// mark back, or count a sample its buckets lack.
import t, { type Test } from 'tap';
import type { Db } from 'mongodb';
import type { ClusterLock } from '../../lib/cluster/locks.js';
import { PeriodCloser } from '../../lib/storage/jobs/closer.js';
import { TotalsRebuilder } from '../../lib/storage/jobs/rebuild.js';
import type { RedisClient } from '../../lib/shared/redis.js';
import { scanKeys } from '../../lib/shared/redis.js';
import { clusterKeys, SLICE_MARKS, sliceKeys } from '../../lib/shared/keys.js';
import { LogWriter } from '../../lib/storage/write/log-writer.js';
import { totalsTrusted } from '../../lib/storage/state/totals-state.js';
import { collectionNames, docIds, type CheckpointDoc } from '../../lib/storage/format/documents.js';
import { decodeCheckpoint } from '../../lib/storage/format/codec.js';
import { rebuildNow, sample, storageKit, totalsMismatches, MIN, type StorageKit } from '../helpers/storage.js';

const T0 = 1_764_576_000_000;
const BUCKET = 10 * MIN;
const PKS = Array.from({ length: 20 }, (_, i) => 1_000_000 + i * 17);

/** `target` with one method replaced; every other member read through to it. */
function overriding<T extends object>(target: T, name: string, fn: (...args: never[]) => unknown): T {
  return new Proxy(target, {
    get(obj, prop) {
      if (prop === name) return fn;
      const v = Reflect.get(obj, prop, obj) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(obj) : v;
    },
  });
}

async function openKeys(k: StorageKit, period: number): Promise<number> {
  let n = 0;
  for await (const batch of scanKeys(k.redis, `${k.cluster}:*:o:${period}:*`)) n += batch.length;
  return n;
}

async function exact(t: Test, k: StorageKit, pks: number[]): Promise<void> {
  t.same(await totalsMismatches(k, pks), [], 'every running total equals its points');
}

/**
 * The database as a closer sees it, its insert of `slice`'s checkpoint of T0 held: `atCheckpoint`
 * resolves when the close reaches it, `release()` lets it go on.
 */
function holdCheckpoint(k: StorageKit, slice: number): { db: Db; atCheckpoint: Promise<void>; release: () => void } {
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let reached!: () => void;
  const atCheckpoint = new Promise<void>((r) => (reached = r));
  const checkpoints = overriding(
    k.db.collection(collectionNames.checkpoints),
    'insertOne',
    async (doc: CheckpointDoc) => {
      if (doc._id === docIds.checkpoint(T0, slice)) {
        reached();
        await held;
      }
      return k.db.collection(collectionNames.checkpoints).insertOne(doc);
    },
  );
  const db = overriding(k.db, 'collection', (name: string) =>
    name === collectionNames.checkpoints ? checkpoints : k.db.collection(name),
  );
  return { db: db as Db, atCheckpoint, release };
}

t.test('a sample applied while the closer looks for the log of a period without one is not left behind', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  const pk = PKS[3]!;
  // a node late with the period: its sample is logged and applied just after the closer found no log
  const db = overriding(k.db, 'listCollections', (filter: { name?: string }, opts: object) => {
    const cursor = k.db.listCollections(filter, opts as never);
    return {
      toArray: async () => {
        const found = await cursor.toArray();
        if (filter?.name === collectionNames.log(T0)) await k.store([sample(pk, T0 + 9 * MIN, 777)]);
        return found;
      },
    };
  });
  const closer = new PeriodCloser({ ...k.deps, db: db as Db }, { graceMs: 0, now: () => k.clock.now });
  k.clock.now = T0 + BUCKET + MIN;
  t.equal(await closer.runOnce(), 'closed');
  t.equal(await openKeys(k, T0), 0, 'no open buffer of the closed period is left');
  await exact(t, k, [pk]);
});

t.test('a slice wiped by a rebuild while the closer reads it is closed after the rebuild, not skipped', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  for (let m = 0; m < 10; m++) await k.store(PKS.map((pk) => sample(pk, T0 + m * MIN, 1000 + (pk % 97) + m)));
  const victim = k.layout.slice(PKS[0]!);
  const keys = k.totals.keysOf(PKS[0]!);
  // the rebuild's wipe lands between the closer's trust check and its read of the slice's pks
  let wiped = false;
  const redis = overriding(k.redis, 'smembers', async (key: string) => {
    if (key === keys.openPks(T0) && !wiped) {
      wiped = true;
      for await (const batch of scanKeys(k.redis, keys.pattern)) for (const x of batch) await k.redis.del(x);
    }
    return k.redis.smembers(key);
  });
  const closer = new PeriodCloser({ ...k.deps, redis: redis as RedisClient }, { graceMs: 0, now: () => k.clock.now });
  k.clock.now = T0 + BUCKET + MIN;
  await closer.closeDue().catch(() => 'failed');
  t.ok(wiped, 'the wipe happened during the close');
  t.equal(await rebuildNow(k.rebuilder, k.redis, k.cluster, k.clock, k.layout.slices), 'rebuilt');
  await k.closer.closeDue();
  t.equal(Number(await k.redis.get(clusterKeys(k.cluster).closed)), T0, 'the period is closed');
  const cp = await k.db
    .collection<CheckpointDoc>(collectionNames.checkpoints)
    .findOne({ _id: docIds.checkpoint(T0, victim) });
  t.ok(cp, "the wiped slice's checkpoint is written");
  t.equal(await openKeys(k, T0), 0, 'no open buffer of the period is left');
  t.equal((await k.points(PKS[0]!)).length, 10, "the wiped slice's points are all there");
  await exact(t, k, PKS);
});

t.test('a closer stalled in the middle of a slice moves no mark back when it goes on', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  for (let m = 0; m < 25; m++) await k.store(PKS.map((pk) => sample(pk, T0 + m * MIN, 2000 + (pk % 89) + m)));
  const pk = PKS[5]!;
  const slice = k.layout.slice(pk);
  // a node that believes it holds every lock (paused past its lock's expiry), held at one checkpoint
  const { db, atCheckpoint, release } = holdCheckpoint(k, slice);
  const lock = {
    runExclusive: async (_: string, fn: (s: AbortSignal) => Promise<unknown>) => ({
      ran: true,
      result: await fn(new AbortController().signal),
    }),
  };
  const stalled = new PeriodCloser(
    { ...k.deps, db: db as Db, lock: lock as unknown as ClusterLock },
    { graceMs: 0, now: () => T0 + BUCKET + MIN },
  );
  k.clock.now = T0 + BUCKET + MIN;
  const late = stalled.runOnce();
  await atCheckpoint;
  // meanwhile the other nodes close this period and the next
  t.equal(await k.closer.closeDue(), 'closed');
  k.clock.now = T0 + 2 * BUCKET + MIN;
  t.equal(await k.closer.closeDue(), 'closed');
  release();
  await late;
  const marks = await k.redis.hmget(k.totals.keysOf(pk).marks, SLICE_MARKS.checkpoint, SLICE_MARKS.closing);
  t.same(
    marks.map(Number),
    [T0 + BUCKET, T0 + BUCKET],
    "the slice's checkpoint and closing marks stay at the newer period",
  );
  t.equal(Number(await k.redis.get(clusterKeys(k.cluster).closed)), T0 + BUCKET, 'the closed mark too');
  const meta = await k.db.collection<{ _id: string; p: number }>(collectionNames.meta).findOne({ _id: 'closed' });
  t.equal(meta?.p, T0 + BUCKET, "and MongoDB's copy of it");
  k.clock.now = T0 + 3 * BUCKET + MIN;
  await k.closer.closeDue();
  const cp = await k.db
    .collection<CheckpointDoc>(collectionNames.checkpoints)
    .findOne({ _id: docIds.checkpoint(T0 + 2 * BUCKET, slice) });
  t.match(
    decodeCheckpoint(T0 + 3 * BUCKET, cp!.b.buffer).totals.find((x) => x.pk === pk),
    { n: 25 },
    'the next checkpoint builds on the newest one: every point once',
  );
  await exact(t, k, PKS);
});

// A close that read a slice's open buffers and wrote its buckets, then is slow to write the
// checkpoint (MongoDB loaded), while Redis restarts and the slice is rebuilt: the rebuild finds no
// checkpoint of the period and counts it from the log, a late sample included, which the close's
// buckets lack. The checkpoint lands while the rebuild reads the log, or after the rebuild.
for (const lands of ['while the rebuild reads the log', 'after the rebuild'] as const) {
  t.test(
    `a slice rebuilt while its close writes the checkpoint, landing ${lands}: nothing its buckets lack is counted`,
    async (t) => {
      const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
      // nine intervals of the period; the tenth of one pk comes late, after the close has begun
      for (let m = 0; m < 9; m++) await k.store(PKS.map((pk) => sample(pk, T0 + m * MIN, 3000 + (pk % 83) + m)));
      const pk = PKS[5]!;
      const slice = k.layout.slice(pk);
      const { db, atCheckpoint, release } = holdCheckpoint(k, slice);
      const slow = new PeriodCloser({ ...k.deps, db: db as Db }, { graceMs: 0, now: () => T0 + BUCKET + MIN });
      k.clock.now = T0 + BUCKET + MIN;
      const closing = slow.runOnce().catch(() => 'failed');
      await atCheckpoint;
      // the late sample: refused by the apply step (the close has begun), in the log only
      const late = await k.store([sample(pk, T0 + 9 * MIN, 9999)]);
      t.same(
        late.parts.map((p) => LogWriter.outcome(late, p)),
        ['late'],
        'a sample after the close began is late',
      );
      // the rebuild, its first read of the period's log held until the close has gone on
      let hooked = lands === 'after the rebuild';
      const logDb = overriding(k.db, 'collection', (name: string) => {
        const col = k.db.collection(name);
        if (name !== collectionNames.log(T0)) return col;
        return overriding(col, 'find', (...args: never[]) => {
          const cursor = col.find(...(args as []));
          return {
            async *[Symbol.asyncIterator]() {
              if (!hooked) {
                hooked = true;
                release();
                await closing;
              }
              yield* cursor;
            },
          };
        });
      });
      const rebuilder = new TotalsRebuilder({ ...k.deps, db: logDb as Db }, { graceMs: 0, now: () => k.clock.now });
      // Redis back under another run id: every slice is rebuilt
      for (let s = 0; s < k.layout.slices; s++)
        await k.redis.hset(
          sliceKeys(k.cluster, k.layout.slices, s).marks,
          SLICE_MARKS.builtOn,
          'a-server-that-restarted',
        );
      t.equal(await rebuildNow(rebuilder, k.redis, k.cluster, k.clock, k.layout.slices), 'rebuilt');
      release();
      await closing;
      if (!(await totalsTrusted(k.redis, k.cluster, k.layout.slices)))
        await rebuildNow(k.rebuilder, k.redis, k.cluster, k.clock, k.layout.slices);
      await k.closer.closeDue();
      t.equal(Number(await k.redis.get(clusterKeys(k.cluster).closed)), T0, 'the period is closed');
      t.equal((await k.points(pk)).length, 9, 'the late sample is not in the timeline');
      await exact(t, k, PKS);
    },
  );
}
