// Data written by the previous layout (one `timeline` document per sample, as the version before
// lib/storage stored it) stays readable until `influencer-node migrate` converts it into buckets,
// rollups and a base for the totals; the conversion resumes after an interruption and a second
// run does nothing.
import t from 'tap';
import { createLogger } from '../../lib/shared/log.js';
import { loadConfig } from '../../lib/ops/config.js';
import { loadLayout } from '../../lib/storage/format/layout.js';
import { migrateLegacy } from '../../lib/storage/jobs/migrate.js';
import { TimelineReader } from '../../lib/storage/read/reader.js';
import { TotalsRebuilder } from '../../lib/storage/jobs/rebuild.js';
import { ClusterLock } from '../../lib/cluster/locks.js';
import { Totals } from '../../lib/storage/state/totals.js';
import { totalsState } from '../../lib/storage/state/totals-state.js';
import { runCli } from '../helpers/cli.js';
import { connected } from '../kit/servers.js';
import { rebuildNow, HOUR, MIN } from '../helpers/storage.js';
import { collectionNames } from '../../lib/storage/format/documents.js';

const log = createLogger('silent');
const DAY = 24 * HOUR;

/** Two days and a bit of one-minute points for `pks`, as the previous version stored them. */
async function writeLegacy(db: import('mongodb').Db, pks: number[], from: number, minutes: number) {
  const docs = [];
  for (const pk of pks) {
    for (let m = 0; m < minutes; m++) {
      const t = from + m * MIN;
      docs.push({
        _id: `${String(pk).padStart(10, '0')}:${String(t).padStart(13, '0')}`,
        pk,
        t: new Date(t),
        f: 1000 * (pk % 100) + ((m * 7) % 50),
        g: 100 + (m % 3),
        w: 1,
      });
    }
  }
  for (let i = 0; i < docs.length; i += 1000)
    await db.collection(collectionNames.legacyTimeline).insertMany(docs.slice(i, i + 1000) as never[]);
  return docs;
}

t.test('migrate: the previous layout read as it was, converted, resumed, rebuilt from', async (t) => {
  const { redis, db, ...svc } = await connected(t, 'migrate-test');
  const env = {
    REDIS_URL: svc.redisUrl,
    MONGO_URL: svc.mongoUrl,
    MONGO_DB: svc.mongoDb,
    CLUSTER: svc.cluster,
    PK_MIN: '1000000',
    PK_MAX: '1000099',
  };
  const config = loadConfig({}, env);
  const upgrade = Math.floor(Date.now() / HOUR) * HOUR;
  const start = upgrade - 2 * DAY - 6 * HOUR;
  const pks = [1_000_001, 1_000_002, 1_000_003, 1_000_004, 1_000_005];
  const legacy = await writeLegacy(db, pks, start, (upgrade - start) / MIN);
  const layout = await loadLayout(db, config, upgrade);
  const reader = new TimelineReader(redis, db, layout, svc.cluster);
  const expected = (pk: number) =>
    legacy.filter((d) => d.pk === pk).map((d) => ({ at: d.t.getTime(), f: d.f, g: d.g }));
  t.same(await reader.points(pks[0]!, start, upgrade), expected(pks[0]!), 'before: read from the old collection');

  // interrupted after its first progress step, then run again
  let steps = 0;
  await t.rejects(
    migrateLegacy(
      db,
      layout,
      log,
      () => {
        if (++steps === 1) throw new Error('interrupted');
      },
      2,
    ),
    /interrupted/,
  );
  const r = await migrateLegacy(db, layout, log, () => undefined, 2);
  t.ok(r.resumedFrom, `resumed after ${r.resumedFrom}`);
  t.equal(r.points + 0, legacy.length, 'every point converted once');

  const after = new TimelineReader(redis, db, await loadLayout(db, config), svc.cluster);
  for (const pk of pks)
    t.same(await after.points(pk, start, upgrade), expected(pk), `pk ${pk}: the same points, from buckets`);
  const day = Math.floor(start / DAY) * DAY + DAY;
  const rollups = await db.collection(collectionNames.rollups(day)).countDocuments({});
  t.equal(rollups >= pks.length, true, `whole days have rollups (${rollups})`);
  const week = await after.buckets(pks[1]!, start, upgrade);
  t.equal(week.length, (upgrade - start) / HOUR, 'one summary per hour over the whole range');
  t.equal(
    week.reduce((a, b) => a + b.s.n, 0),
    expected(pks[1]!).length,
  );

  const cli = await runCli(['migrate'], env);
  t.equal(cli.code, 0, cli.stderr);
  t.match(cli.stdout, /already migrated/, 'a second run does nothing');

  // Redis lost: the rebuild adds the converted base under the new layout's checkpoints
  const clock = { now: Date.now() };
  const totals = new Totals(redis, svc.cluster, layout.slices);
  const rebuilder = new TotalsRebuilder(
    { redis, db, lock: new ClusterLock(redis, svc.cluster, log), layout, cluster: svc.cluster, log, totals },
    { graceMs: 0, now: () => clock.now },
  );
  t.equal(await rebuildNow(rebuilder, redis, svc.cluster, clock, layout.slices), 'rebuilt');
  for (const pk of pks) {
    const mine = expected(pk);
    t.match(
      await totals.read(pk),
      { samples: mine.length, followerSum: mine.reduce((a, p) => a + p.f, 0), latestAt: mine[mine.length - 1]!.at },
      `pk ${pk}: totals of its converted points`,
    );
  }
  const dropped = await runCli(['migrate', '--drop'], env);
  t.equal(dropped.code, 0);
  t.same(
    await db.listCollections({ name: collectionNames.legacyTimeline }).toArray(),
    [],
    'the old collection dropped on request',
  );
  t.same(await after.points(pks[0]!, start, upgrade), expected(pks[0]!), 'and the points still read');
  t.equal(await totalsState(redis, svc.cluster, layout.slices), 'ready');
});

t.test('migrate with nothing to migrate, and with MongoDB down', async (t) => {
  const { db, ...svc } = await connected(t, 'migrate-none');
  void db;
  const env = { MONGO_URL: svc.mongoUrl, MONGO_DB: svc.mongoDb };
  const none = await runCli(['migrate'], env);
  t.equal(none.code, 0);
  t.match(none.stdout, /nothing to migrate/);
  const down = await runCli(['migrate'], { MONGO_URL: 'mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500' });
  t.equal(down.code, 1);
  t.match(down.stderr, /^influencer-node: MongoDB unreachable at mongodb:\/\/127\.0\.0\.1:1/);
});
