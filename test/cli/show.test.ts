// `influencer-node show`: one influencer's counts, ratio, average and timeline.
import t from 'tap';
import { loadConfig } from '../../lib/ops/config.js';
import { loadLayout } from '../../lib/storage/format/layout.js';
import { Totals } from '../../lib/storage/state/totals.js';
import { runCli } from '../helpers/cli.js';
import { connected } from '../kit/servers.js';
import { sampleStore, startTotals, takeRankings } from '../helpers/storage.js';

t.test('show', async (t) => {
  const { redis, db, ...svc } = await connected(t, 'show-test');
  const now = Math.floor(Date.now() / 60_000) * 60_000;
  const pk = 1_000_042;
  const layout = await loadLayout(db, loadConfig({}, {}), now - 3_600_000);
  await startTotals(redis, db, layout, svc.cluster);
  const totals = new Totals(redis, svc.cluster, layout.slices);
  await sampleStore(
    db,
    totals,
    layout,
  )([
    { pk, at: now - 120_000, username: 'influencer-1000042', followerCount: 100_000, followingCount: 1000 },
    { pk, at: now - 60_000, username: 'influencer-1000042', followerCount: 100_300, followingCount: 1003 },
    { pk, at: now, username: 'influencer-1000042', followerCount: 100_600, followingCount: 1000 },
    { pk: pk + 1, at: now, username: 'influencer-1000043', followerCount: 200_000, followingCount: 10 },
  ]);
  await takeRankings(redis, svc.cluster, totals);
  const env = { ...svc.redisEnv, MONGO_URL: svc.mongoUrl, MONGO_DB: svc.mongoDb, CLUSTER: svc.cluster };

  const text = await runCli(['show', String(pk)], env);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /influencer-1000042 \(pk 1000042\)/);
  t.match(text.stdout, /followers 100600 {2}following 1000 {2}ratio 100.6/);
  t.match(text.stdout, /average 100300 {2}min 100000 {2}max 100600 {2}over 3 samples {2}rank 2/);
  t.match(text.stdout, /3 points/);
  t.match(text.stdout, /100300 +1003 +100\b/);

  const json = await runCli(['show', String(pk), '--json', '--from', new Date(now - 90_000).toISOString()], env);
  t.equal(json.code, 0);
  const v = JSON.parse(json.stdout);
  t.match(v, {
    pk,
    followerCount: 100_600,
    followingCount: 1000,
    followerRatio: 100.6,
    averageFollowers: 100_300,
    minFollowers: 100_000,
    maxFollowers: 100_600,
    samples: 3,
    rank: 2,
  });
  t.same(
    v.points.map((p: { followerCount: number }) => p.followerCount),
    [100_300, 100_600],
    '--from limits the points',
  );
  t.equal(v.points[0].followerRatio, Math.round((100_300 / 1003) * 10000) / 10000, 'ratio per point');

  // scripts tell the cases apart by the exit code: 3 tracked but no sample yet, 1 not tracked, 2 not a pk
  const none = await runCli(['show', '1000500'], env);
  t.equal(none.code, 3, 'no data yet: exit 3');
  t.equal(none.stdout, '');
  t.equal(none.stderr, 'influencer-node: pk 1000500: no data yet: no node has stored a sample for it\n');
  const noneJson = await runCli(['show', '1000500', '--json'], env);
  t.equal(noneJson.code, 3);
  t.same(JSON.parse(noneJson.stdout), {
    pk: 1_000_500,
    found: false,
    reason: 'no_data',
    message: 'no data yet: no node has stored a sample for it',
  });

  const outside = await runCli(['show', '12'], env);
  t.equal(outside.code, 1, 'a pk the cluster does not track: exit 1');
  t.match(
    outside.stderr,
    /^influencer-node: pk 12: not tracked by cluster \S+ \(PK_MIN\.\.PK_MAX is 1000000\.\.1999999\)\n$/,
  );
  t.match(JSON.parse((await runCli(['show', '12', '--json'], env)).stdout), {
    pk: 12,
    found: false,
    reason: 'not_found',
  });
  const invalid = await runCli(['show', 'abc'], env);
  t.equal(invalid.code, 2, 'not a pk: exit 2');
  t.match(invalid.stderr, /pk "abc" is not valid: expected an integer from 1000000 to 1999999/);
  const local = await runCli(['show', String(pk), '--from', '2026-11-27T10:00'], env);
  t.equal(local.code, 2, 'a time without an offset is refused');
  t.match(
    local.stderr,
    /--from="2026-11-27T10:00" is not valid: expected an ISO time with an offset .*: this one has no offset/,
  );
  const backwards = await runCli(['show', String(pk), '--from', '2026-01-02T00:00Z', '--to', '2026-01-01T00:00Z'], env);
  t.equal(backwards.code, 2);
  t.match(backwards.stderr, /--from is after --to/);
  const down = await runCli(['show', String(pk)], { ...env, MONGO_URL: 'mongodb://127.0.0.1:1' });
  t.equal(down.code, 1);
  t.match(down.stderr, /MongoDB unreachable at mongodb:\/\/127.0.0.1:1/);
});
