// Redis loses the running totals (a restart without persistence, a flush), or comes back from an
// older snapshot: a singleton job rebuilds them into fresh keys from the newest checkpoints and the
// log after them; the answers are the same as before, the open buffers come back with the rebuild,
// and a rebuilder that stalled past its lock cannot add its merge a second time.
import t from 'tap';
import { storeSuspicious } from '../../../../lib/polling/suspicious.js';
import { collections } from '../../../../lib/storage/format/documents.js';
import { memberIndexKey, nodeKey, SLICE_MARKS, sliceKeys } from '../../../../lib/shared/keys.js';
import { packTotals } from '../../../../lib/storage/format/codec.js';
import { LogWriter } from '../../../../lib/storage/write/log-writer.js';
import { redisIdentity, totalsState } from '../../../../lib/storage/state/totals-state.js';
import { mergeSlice } from '../../../../lib/lua/scripts.js';
import { scanKeys } from '../../../../lib/shared/redis.js';
import { rebuildCutoff, rebuildNow, sample, storageKit, MIN, type StorageKit } from '../../../helpers/storage.js';
import { sleep } from '../../../kit/wait.js';

const T0 = 1_764_576_000_000;
const BUCKET = 10 * MIN;
const PKS = Array.from({ length: 30 }, (_, i) => 1_000_000 + i * 7);

async function fill(k: StorageKit, fromMinute: number, minutes: number): Promise<void> {
  for (let m = fromMinute; m < fromMinute + minutes; m++) {
    await k.store(PKS.map((pk) => sample(pk, T0 + m * MIN, 5000 + ((pk * 37 + m * 101) % 900), 50 + (m % 7))));
  }
}

async function snapshot(k: StorageKit) {
  await k.rank();
  return {
    totals: await Promise.all(PKS.map((pk) => k.totals.read(pk))),
    ranks: await Promise.all(PKS.map((pk) => k.totals.rank(pk))),
    summary: averages(await k.totals.summary()),
  };
}

function averages(s: { influencers: number; averageFollowers: number | null }) {
  return { influencers: s.influencers, averageFollowers: s.averageFollowers };
}

const rebuild = (k: StorageKit): Promise<string> =>
  rebuildNow(k.rebuilder, k.redis, k.cluster, k.clock, k.layout.slices);
const state = (k: StorageKit) => totalsState(k.redis, k.cluster, k.layout.slices);
const marksOf = (k: StorageKit, slice: number): string => sliceKeys(k.cluster, k.layout.slices, slice).marks;

/** Deletes every key of the cluster, as a Redis restarted without its data would have none. */
async function loseRedis(k: StorageKit): Promise<void> {
  for await (const batch of scanKeys(k.redis, `${k.cluster}:*`)) for (const key of batch) await k.redis.del(key);
}

t.test('rebuild after the totals are lost: checkpoints plus the log give the same answers', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 25);
  // two closed periods (checkpoints), the third still open
  k.clock.now = T0 + 2 * BUCKET + MIN;
  await k.closer.closeDue();
  await storeSuspicious({ answers: collections(k.db).answers, totals: k.totals }, PKS[5]!, true, T0 + 5000, 0);
  const before = await snapshot(k);
  const pointsBefore = await Promise.all(PKS.map((pk) => k.points(pk, T0, T0 + 3 * BUCKET)));

  await loseRedis(k);
  t.equal(await state(k), 'missing');
  const during = await k.store([sample(PKS[0]!, T0 + 25 * MIN, 7777)]);
  t.same(
    during.parts.map((p) => LogWriter.outcome(during, p)),
    ['rebuild'],
    'a batch while the totals are missing is logged and left to the rebuild',
  );
  k.clock.now = T0 + 26 * MIN;
  t.equal(await rebuild(k), 'rebuilt');
  t.equal(await state(k), 'ready');
  const after = await snapshot(k);
  t.same(after.totals.slice(1), before.totals.slice(1), 'every other pk: the same totals as before the loss');
  t.match(
    after.totals[0],
    { samples: before.totals[0]!.samples + 1, followerCount: 7777, latestAt: T0 + 25 * MIN },
    'the sample logged during the loss is counted',
  );
  t.match(await k.totals.read(PKS[5]!), { suspicious: true }, 'the daily flags come back');
  const counts = after.totals.map((x) => x!.followerCount);
  t.same(
    after.ranks,
    counts.map((f) => 1 + counts.filter((g) => g > f).length),
    'every rank: 1 + the counts above it, the new sample included',
  );
  // the open period's buffers come back with the rebuild's refill, with the same points
  t.same(
    await Promise.all(PKS.slice(1).map((pk) => k.points(pk, T0, T0 + 3 * BUCKET))),
    pointsBefore.slice(1),
    'every point is readable again at once: closed periods from buckets, the open one from its buffers',
  );

  // a straggler from before the cutoff, logged after the rebuild read the log (a node cut off from
  // Redis for a while): left alone live, counted by the period's reconcile
  const since = Number(await k.redis.hget(marksOf(k, k.layout.slice(PKS[2]!)), SLICE_MARKS.since));
  const straggler = await k.store([sample(PKS[2]!, since - MIN, 4444)]);
  t.same(
    straggler.parts.map((p) => LogWriter.outcome(straggler, p)),
    ['rebuild'],
    'a sample before the cutoff is left to the reconcile',
  );
  t.match(await k.totals.read(PKS[2]!), { samples: before.totals[2]!.samples }, 'not counted live');
  k.clock.now = T0 + 3 * BUCKET + MIN;
  await k.closer.closeDue();
  t.same(
    await Promise.all(PKS.slice(3).map((pk) => k.points(pk, T0, T0 + 3 * BUCKET))),
    pointsBefore.slice(3),
    'every point is in a bucket again',
  );
  const third = await k.points(PKS[2]!, T0, T0 + 3 * BUCKET);
  t.equal(third.length, pointsBefore[2]!.length + 1, 'the straggler is in the timeline');
  t.match(
    await k.totals.read(PKS[2]!),
    { samples: third.length, followerSum: third.reduce((a, p) => a + p.f, 0) },
    'and counted once',
  );
  t.equal(await k.rebuilder.runOnce(), 'ready', 'nothing more to do');
});

t.test('Redis back from an older snapshot: the stale keys are wiped and rebuilt, not added to', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 12);
  k.clock.now = T0 + BUCKET + MIN;
  await k.closer.closeDue();
  const before = await snapshot(k);
  // what an older snapshot holds: fewer samples, and the run id of the server that wrote it
  for (const pk of PKS) {
    const stale = { pk, n: 3, sum: 15000, min: 5000, max: 5000, at: T0, f: 5000, g: 50, pat: -1, pf: 0, username: '' };
    await k.redis.hset(k.totals.keysOf(pk).totals, String(pk), packTotals(stale));
  }
  for (let s = 0; s < k.layout.slices; s++)
    await k.redis.hset(marksOf(k, s), SLICE_MARKS.builtOn, 'a-server-that-restarted');
  t.equal(await state(k), 'ready', 'the keys look fine');
  k.clock.now = T0 + BUCKET + 3 * MIN;
  t.equal(await rebuild(k), 'rebuilt', 'another run id: rebuilt');
  t.same((await snapshot(k)).totals, before.totals, 'exact, not added onto the stale keys');
  t.equal(await k.redis.hget(marksOf(k, 0), SLICE_MARKS.builtOn), await redisIdentity(k.redis, marksOf(k, 0)));
});

t.test('a rebuilder that stalled past its lock cannot merge after another took over', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 3);
  await loseRedis(k);
  // the first rebuilder's marks, as they were when it stalled; another node starts the rebuild again
  const T = T0 + 5 * MIN;
  for (let s = 0; s < k.layout.slices; s++)
    await k.redis.hset(
      marksOf(k, s),
      SLICE_MARKS.since,
      T,
      SLICE_MARKS.rebuildCutoff,
      T,
      SLICE_MARKS.rebuildOwner,
      'stalled-one',
    );
  t.equal(await rebuild(k), 'rebuilt', 'started again by another node');
  const merged = await k.totals.read(PKS[0]!);
  t.match(merged, { samples: 3 });
  const k0 = k.totals.keysOf(PKS[0]!);
  const T2 = Number(await k.redis.hget(k0.marks, SLICE_MARKS.since));
  // the new rebuild's marks while it ran, and the stalled rebuilder's merge arriving then
  await k.redis.hset(k0.marks, SLICE_MARKS.rebuildCutoff, T2, SLICE_MARKS.rebuildOwner, 'the-new-one');
  const pk = Buffer.alloc(8);
  pk.writeDoubleBE(PKS[0]!);
  const stale = {
    pk: PKS[0]!,
    n: 3,
    sum: 15000,
    min: 5000,
    max: 5000,
    at: T0,
    f: 5000,
    g: 50,
    pat: -1,
    pf: 0,
    username: '',
  };
  for (const cutoff of [T, T2]) {
    const late = await mergeSlice(
      k.redis,
      [k0.marks, k0.totals, k0.usernames, k0.suspicious],
      [cutoff, 'stalled-one', Buffer.concat([pk, packTotals(stale)])],
    );
    t.equal(late, -1, `the stalled merge is refused (cutoff ${cutoff === T ? 'its own' : "the new one's"})`);
  }
  t.same(await k.totals.read(PKS[0]!), merged, 'nothing counted twice');
});

t.test('the rebuild waits for a live member still logging samples before its cutoff', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 2);
  await loseRedis(k);
  const run = k.rebuilder.runOnce();
  await sleep(200);
  const T = Number(await rebuildCutoff(k.redis, k.cluster, k.layout.slices));
  t.ok(T > 0, 'a cutoff was set');
  // a member whose buffer holds a sample before T, logged only later
  const card = {
    format: 1,
    id: 'behind',
    host: 'h',
    pid: 1,
    version: '0',
    weight: 1,
    state: 'active',
    started: T0,
    heartbeat: T,
    ttlMs: 10 * BUCKET,
    view: '',
    stats: { loggedThrough: T - MIN },
  };
  await k.redis.set(nodeKey(k.cluster, 'behind'), JSON.stringify(card), 'PX', 60_000);
  await k.redis.sadd(memberIndexKey(k.cluster), 'behind');
  k.clock.now = T + 1;
  await sleep(600);
  t.equal(await state(k), 'rebuilding', 'still waiting for it');
  await k.store([sample(1_000_999, T - MIN, 4321)]);
  await k.redis.set(
    nodeKey(k.cluster, 'behind'),
    JSON.stringify({ ...card, stats: { loggedThrough: T } }),
    'PX',
    60_000,
  );
  t.equal(await run, 'rebuilt');
  t.match(
    await k.totals.read(1_000_999),
    { samples: 1, latestAt: T - MIN, followerCount: 4321 },
    'its late sample is counted',
  );
});
