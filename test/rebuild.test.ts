// Redis loses the running totals (a restart without persistence, a flush), or comes back from an
// older snapshot: a singleton job rebuilds them into fresh keys from the newest checkpoints and the
// log after them; the answers are the same as before, the open buffers come back with their
// period's close, and a rebuilder that stalled past its lock cannot add its merge a second time.
import t from 'tap';
import { storeSuspicious } from '../lib/polling/suspicious.js';
import { collections } from '../lib/storage/format/documents.js';
import { clusterKeys, memberIndexKey, nodeKey } from '../lib/shared/keys.js';
import { redisIdentity, totalsState } from '../lib/storage/state/totals-state.js';
import { mergeTotals } from '../lib/lua/scripts.js';
import { rebuildNow, sample, storageKit, MIN, type StorageKit } from './helpers/storage.js';

const T0 = 1_764_576_000_000;
const BUCKET = 10 * MIN;
const PKS = Array.from({ length: 30 }, (_, i) => 1_000_000 + i * 7);

async function fill(k: StorageKit, fromMinute: number, minutes: number): Promise<void> {
  for (let m = fromMinute; m < fromMinute + minutes; m++) {
    await k.store(PKS.map((pk) => sample(pk, T0 + m * MIN, 5000 + ((pk * 37 + m * 101) % 900), 50 + (m % 7))));
  }
}

async function snapshot(k: StorageKit) {
  return {
    totals: await Promise.all(PKS.map((pk) => k.totals.read(pk))),
    ranks: await Promise.all(PKS.map((pk) => k.totals.rank(pk))),
    summary: await k.totals.summary(),
  };
}

const rebuild = (k: StorageKit): Promise<string> => rebuildNow(k.rebuilder, k.redis, k.cluster, k.clock);

/** Deletes every key of the cluster, as a Redis restarted without its data would have none. */
async function loseRedis(k: StorageKit): Promise<void> {
  const keys = await k.redis.keys(`${k.cluster}:*`);
  if (keys.length) await k.redis.del(...keys);
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
  t.equal(await totalsState(k.redis, k.cluster), 'missing');
  const during = await k.store([sample(PKS[0]!, T0 + 25 * MIN, 7777)]);
  t.same(
    during.parts.map((p) => p.outcome),
    ['rebuild'],
    'a batch while the totals are missing is logged and left to the rebuild',
  );
  k.clock.now = T0 + 26 * MIN;
  t.equal(await rebuild(k), 'rebuilt');
  t.equal(await totalsState(k.redis, k.cluster), 'ready');
  const after = await snapshot(k);
  t.same(after.totals.slice(1), before.totals.slice(1), 'every other pk: the same totals as before the loss');
  t.match(
    after.totals[0],
    { samples: before.totals[0]!.samples + 1, followerCount: 7777, latestAt: T0 + 25 * MIN },
    'the sample logged during the loss is counted',
  );
  t.match(await k.totals.read(PKS[5]!), { suspicious: true }, 'the daily flags come back');
  t.same(
    after.ranks.slice(1).every((r) => r !== null),
    true,
  );

  // a straggler from before the cutoff, logged after the rebuild read the log (a node cut off from
  // Redis for a while): left alone live, counted by the period's reconcile
  const since = Number(await k.redis.get(clusterKeys(k.cluster).since));
  const straggler = await k.store([sample(PKS[2]!, since - MIN, 4444)]);
  t.same(
    straggler.parts.map((p) => p.outcome),
    ['applied'],
  );
  t.match(await k.totals.read(PKS[2]!), { samples: before.totals[2]!.samples }, 'not counted live');

  // the open period's buffers come back when it closes (its reconcile), with the same points
  t.equal((await k.points(PKS[1]!, T0 + 2 * BUCKET, T0 + 3 * BUCKET)).length, 0, 'open buffers are not back yet');
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
  const keys = clusterKeys(k.cluster);
  for (const pk of PKS) await k.redis.hset(keys.influencer(pk), 'n', '3', 's', '15000');
  await k.redis.set(keys.builtOn, 'a-server-that-restarted');
  t.equal(await totalsState(k.redis, k.cluster), 'ready', 'the keys look fine');
  k.clock.now = T0 + BUCKET + 3 * MIN;
  t.equal(await rebuild(k), 'rebuilt', 'another run id: rebuilt');
  t.same((await snapshot(k)).totals, before.totals, 'exact, not added onto the stale keys');
  t.equal(await k.redis.get(keys.builtOn), await redisIdentity(k.redis));
});

t.test('a rebuilder that stalled past its lock cannot merge after another took over', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 3);
  const keys = clusterKeys(k.cluster);
  await loseRedis(k);
  // the first rebuilder's progress, as it was when it stalled; the second resumes it under its own token
  const T = T0 + 5 * MIN;
  await k.redis.hset(keys.rebuild, 'T', String(T), 'owner', 'stalled-one');
  await k.redis.set(keys.since, String(T));
  k.clock.now = T + MIN;
  t.equal(await k.rebuilder.runOnce(), 'rebuilt', 'resumed by another node');
  const merged = await k.totals.read(PKS[0]!);
  t.match(merged, { samples: 3 });
  await k.redis.hset(keys.rebuild, 'T', String(T), 'owner', 'the-new-one');
  const late = await mergeTotals(
    k.redis,
    [keys.rank, keys.stats, keys.rebuild, keys.growth, keys.influencer(PKS[0]!)],
    [String(T), 'stalled-one', PKS[0]!, 3, 15000, 5000, 5000, T0, 5000, 50, -1, 0, '', '0', -1],
  );
  t.equal(late, -1, 'the stalled merge is refused');
  t.same(await k.totals.read(PKS[0]!), merged, 'nothing counted twice');
});

t.test('the rebuild waits for a live member still logging samples before its cutoff', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 2);
  await loseRedis(k);
  const run = k.rebuilder.runOnce();
  await new Promise((r) => setTimeout(r, 200));
  const T = Number(await k.redis.hget(clusterKeys(k.cluster).rebuild, 'T'));
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
  await k.redis.set(nodeKey(k.cluster, 'behind'), JSON.stringify(card));
  await k.redis.sadd(memberIndexKey(k.cluster), 'behind');
  k.clock.now = T + 1;
  await new Promise((r) => setTimeout(r, 600));
  t.equal(await totalsState(k.redis, k.cluster), 'rebuilding', 'still waiting for it');
  await k.store([sample(1_000_999, T - MIN, 4321)]);
  await k.redis.set(nodeKey(k.cluster, 'behind'), JSON.stringify({ ...card, stats: { loggedThrough: T } }));
  t.equal(await run, 'rebuilt');
  t.match(
    await k.totals.read(1_000_999),
    { samples: 1, latestAt: T - MIN, followerCount: 4321 },
    'its late sample is counted',
  );
});
