// Redis loses the running totals and the rank index (restart without persistence, flush): writes
// wait, a singleton job rebuilds them from MongoDB, and the answers are the same as before.
import t from 'tap';
import { createLogger } from '../lib/log.js';
import { ClusterLock } from '../lib/locks.js';
import { TotalsRebuilder, totalsState } from '../lib/rebuild.js';
import { BatchWriter, collections, type Sample } from '../lib/store.js';
import { storeSuspicious } from '../lib/suspicious.js';
import { Totals } from '../lib/totals.js';
import { connected } from './helpers/servers.js';

const log = createLogger('silent');

t.test('rebuild after the totals are lost gives the same answers', async (t) => {
  const { redis, db, ...svc } = await connected(t, 'rebuild-test');
  const INTERVAL = 500;
  const rebuilder = new TotalsRebuilder(redis, db, new ClusterLock(redis, svc.cluster, log), svc.cluster, INTERVAL, log, 300);
  t.equal(await rebuilder.runOnce(), 'ready', 'a new cluster starts at 0 without waiting');
  const totals = new Totals(redis, svc.cluster);
  const writer = new BatchWriter(db, totals);
  const pks = Array.from({ length: 40 }, (_, i) => 1_000_000 + i);
  const sample = (pk: number, at: number, f: number): Sample => ({ pk, at, username: `influencer-${pk}`, followerCount: f, followingCount: 50 + (f % 7) });
  for (let m = 1; m <= 4; m++) {
    await writer.write(BatchWriter.batch(pks.map((pk) => sample(pk, m * 60_000, 5000 + ((pk * 37 + m * 101) % 900)))));
  }
  // daily suspicious answers: in the suspicious collection and next to the totals; pk 6's on its
  // influencer document, where an earlier version stored it
  const flagged = { answers: collections(db).suspicious, totals };
  await storeSuspicious(flagged, pks[1], false, 4000, 0);
  await storeSuspicious(flagged, pks[5], false, 4500, 0);
  await storeSuspicious(flagged, pks[5], true, 5000, 86_400_000);
  await collections(db).influencers.updateOne({ _id: pks[6] }, { $set: { suspicious: false, suspiciousAt: new Date(6000) } });
  await totals.setSuspicious(pks[6], false, 6000);
  const before = {
    totals: await Promise.all(pks.map((pk) => totals.read(pk))),
    ranks: await Promise.all(pks.map((pk) => totals.rank(pk))),
    summary: await totals.summary(),
  };

  // Redis loses every key of the cluster
  const keys = await redis.keys(`${svc.cluster}:*`);
  await redis.del(...keys);
  t.equal(await totalsState(redis, svc.cluster), 'missing');
  const uncounted = BatchWriter.batch([sample(pks[0], 5 * 60_000, 7777)]);
  await writer.write(uncounted);
  t.ok(uncounted.leftToRebuild, 'a write while the totals are missing stores its points and leaves them to the rebuild');

  const run = rebuilder.runOnce();
  await new Promise((r) => setTimeout(r, 100));
  t.equal(await totalsState(redis, svc.cluster), 'rebuilding', 'reads can say the rank is being rebuilt');
  const since = Number(await redis.get(`${svc.cluster}:totals:since`));
  // during the rebuild: an old sample (counted by the scan) and new ones (counted by Lua)
  const late = BatchWriter.batch([sample(pks[1], 6 * 60_000, 6100)]);
  await writer.write(late);
  const fresh = BatchWriter.batch([sample(pks[2], since, 6200), sample(pks[2], since + INTERVAL, 6300)]);
  await writer.write(fresh);
  // a check stored after the rebuild read its document: the newer answer stays
  await totals.setSuspicious(pks[1], true, 9000);
  t.equal(await run, 'rebuilt');
  t.equal(await totalsState(redis, svc.cluster), 'ready');

  // every pk's totals equal its stored points, and the untouched ones equal what they were
  const points = await collections(db).timeline.find({}).toArray();
  for (const pk of pks) {
    const mine = points.filter((p) => p.pk === pk);
    const sum = mine.reduce((a, p) => a + p.f, 0);
    const latest = mine.reduce((a, p) => (p.t > a.t ? p : a));
    t.match(await totals.read(pk), { samples: mine.length, followerSum: sum, followerMin: Math.min(...mine.map((p) => p.f)), followerMax: Math.max(...mine.map((p) => p.f)), latestAt: latest.t.getTime(), followerCount: latest.f, username: `influencer-${pk}` }, `pk ${pk}`);
  }
  const after = await Promise.all(pks.slice(3).map((pk) => totals.read(pk)));
  t.same(after, before.totals.slice(3), 'the same totals as before the loss');
  t.match(await totals.read(pks[5]), { suspicious: true, suspiciousAt: 5000 }, 'suspicious flags restored: the latest answer of each pk');
  t.match(await totals.read(pks[6]), { suspicious: false, suspiciousAt: 6000 }, 'and from an influencer document of an earlier version');
  t.match(await totals.read(pks[1]), { suspicious: true, suspiciousAt: 9000 }, 'but not over a newer check');
  t.match(await totals.read(pks[7]), { suspicious: null, suspiciousAt: null }, 'never checked: no flag');
  const summary = await totals.summary();
  t.equal(summary.influencers, before.summary.influencers);
  const latestSum = (await Promise.all(pks.map((pk) => totals.read(pk)))).reduce((a, x) => a + x!.followerCount, 0);
  t.equal(summary.averageFollowers, Math.round((latestSum / pks.length) * 100) / 100, 'the all-influencer average follows the latest counts');
  const latest = await Promise.all(pks.map(async (pk) => (await totals.read(pk))!.followerCount));
  t.same(await Promise.all(pks.map((pk) => totals.rank(pk))), latest.map((f) => latest.filter((x) => x > f).length + 1), 'ranks: higher latest counts + 1');
  t.ok(before.ranks.every((r) => r !== null), 'every pk was ranked before the loss too');
  t.equal(await rebuilder.runOnce(), 'ready', 'nothing more to do');
});
