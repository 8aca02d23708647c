// The hour a cluster of the version that stored one `timeline` document per sample is upgraded in:
// the layout's first period begins at the start of that hour, and the previous nodes went on writing
// `timeline` until the first new node started (25 minutes into it here). Those points belong to the
// new layout's first period: the totals, the reader and `migrate` must each count them once, beside
// the new nodes' own samples of the same hour (two of which repeat an interval the old nodes had).
import t from 'tap';
import type { Db } from 'mongodb';
import { createLogger } from '../../lib/shared/log.js';
import { ClusterLock } from '../../lib/cluster/locks.js';
import { loadLayout, type StorageLayout } from '../../lib/storage/format/layout.js';
import { collectionNames, type Sample } from '../../lib/storage/format/documents.js';
import { migrateLegacy } from '../../lib/storage/jobs/migrate.js';
import { PeriodCloser } from '../../lib/storage/jobs/closer.js';
import { TotalsRebuilder } from '../../lib/storage/jobs/rebuild.js';
import { TimelineReader } from '../../lib/storage/read/reader.js';
import { Totals } from '../../lib/storage/state/totals.js';
import { LogWriter } from '../../lib/storage/write/log-writer.js';
import type { RedisClient } from '../../lib/shared/redis.js';
import { scanKeys, unlinkKeys } from '../../lib/shared/redis.js';
import { connected } from '../kit/servers.js';
import { HOUR, MIN, rebuildNow } from '../helpers/storage.js';

type Test = Parameters<Parameters<typeof t.test>[1]>[0];
const log = createLogger('silent');
const PKS = [1_000_001, 1_000_002, 1_000_003, 1_000_004];
const settings = { intervalMs: MIN, bucketMs: HOUR, pkMin: 1_000_000, pkMax: 1_000_099 };
/** the layout's first period: two hours ago, so that it and the next have ended */
const FIRST = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
/** when the first new node started */
const UPGRADE = FIRST + 25 * MIN;
/** the previous version's points: three hours before the first period, and 25 minutes of it */
const OLD_FROM = FIRST - 3 * HOUR;
/** the new node's samples: from two intervals the old nodes had already polled, for 30 minutes */
const NEW_FROM = UPGRADE - 2 * MIN;
const NEW_TO = UPGRADE + 30 * MIN;
/** distinct intervals per pk */
const EXPECTED = (UPGRADE - OLD_FROM) / MIN + (NEW_TO - UPGRADE) / MIN + 1;

async function writeTimeline(db: Db, until = UPGRADE): Promise<void> {
  const docs = [];
  for (const pk of PKS)
    for (let at = OLD_FROM; at < until; at += MIN)
      docs.push({
        _id: `${String(pk).padStart(10, '0')}:${String(at).padStart(13, '0')}`,
        pk,
        t: new Date(at),
        f: 5000 + (pk % 100) * 10 + ((at / MIN) % 40),
        g: 300,
        w: 1,
      });
  // a document that holds no point: left out, never a crash
  docs.push({
    _id: `${String(PKS[0]).padStart(10, '0')}:garbage`,
    pk: PKS[0]!,
    t: 'yesterday' as never,
    f: -1,
    g: 1,
    w: 1,
  });
  for (let i = 0; i < docs.length; i += 1000)
    await db.collection(collectionNames.legacyTimeline).insertMany(docs.slice(i, i + 1000) as never[]);
}

/** The new node's samples, logged only: while the previous nodes ran, nothing of this layout was applied. */
async function logNewSamples(db: Db, totals: Totals, layout: StorageLayout): Promise<void> {
  const samples: Sample[] = [];
  for (const pk of PKS)
    for (let at = NEW_FROM; at <= NEW_TO; at += MIN)
      samples.push({ pk, at, username: `inf-${pk}`, followerCount: 7000 + ((at / MIN) % 40), followingCount: 310 });
  const writer = new LogWriter(db, totals, layout, 'new-node');
  await writer.log(writer.batch(samples));
}

async function wipeRedis(redis: RedisClient, cluster: string): Promise<void> {
  for await (const batch of scanKeys(redis, `${cluster}:*`)) await unlinkKeys(redis, batch);
}

async function rebuild(redis: RedisClient, db: Db, cluster: string, layout: StorageLayout): Promise<Totals> {
  const totals = new Totals(redis, cluster, layout.slices);
  const clock = { now: Date.now() };
  const rebuilder = new TotalsRebuilder(
    { redis, db, lock: new ClusterLock(redis, cluster, log), layout, cluster, log, totals },
    { graceMs: 0, now: () => clock.now },
  );
  const outcome = await rebuildNow(rebuilder, redis, cluster, clock, layout.slices);
  if (outcome !== 'rebuilt') throw new Error(`rebuild: ${outcome}`);
  return totals;
}

/** Per pk: its points as read, whether each interval is there once, and whether its totals agree with them. */
async function check(
  t: Test,
  what: string,
  redis: RedisClient,
  db: Db,
  cluster: string,
  totals: Totals,
  expected: number,
): Promise<void> {
  const reader = new TimelineReader(redis, db, await loadLayout(db, settings), cluster);
  for (const pk of PKS) {
    const points = await reader.points(pk, OLD_FROM, FIRST + 2 * HOUR);
    const intervals = new Set(points.map((p) => p.at));
    const sum = points.reduce((a, p) => a + p.f, 0);
    const tot = await totals.read(pk);
    t.same(
      { points: points.length, intervals: intervals.size, samples: tot?.samples, followerSum: tot?.followerSum },
      { points: expected, intervals: expected, samples: expected, followerSum: sum },
      `${what}, pk ${pk}: ${points.length} points read, totals of ${tot?.samples} samples (${expected} expected)`,
    );
  }
}

t.test('the upgrade hour: rebuilt from the unconverted timeline, then migrated and dropped', async (t) => {
  const { redis, db, cluster } = await connected(t, 'upgrade-hour');
  await writeTimeline(db);
  const layout = await loadLayout(db, settings, UPGRADE);
  t.equal(layout.firstPeriod, FIRST);
  await logNewSamples(db, new Totals(redis, cluster, layout.slices), layout);

  // the last previous node has gone: the totals are built from MongoDB
  let totals = await rebuild(redis, db, cluster, layout);
  await check(t, 'rebuilt from the timeline', redis, db, cluster, totals, EXPECTED);
  // the first period closed: its points are read from its buckets
  const closer = new PeriodCloser(
    { redis, db, lock: new ClusterLock(redis, cluster, log), layout, cluster, log, totals },
    { graceMs: 0 },
  );
  t.equal(await closer.closeDue(), 'closed');
  t.ok(
    await db.collection(collectionNames.buckets(FIRST)).findOne({ _id: `${PKS[0]}:${FIRST}` }),
    'a bucket of the first period',
  );
  await check(t, 'closed', redis, db, cluster, totals, EXPECTED);

  const r = await migrateLegacy(db, layout, log);
  await db.dropCollection(collectionNames.legacyTimeline);
  t.equal(r.points, PKS.length * ((FIRST - OLD_FROM) / MIN), 'migrate converts the points before the first period');
  t.equal(r.unreadable, 1, 'and leaves out the document that holds none');
  await check(t, 'migrated, timeline dropped', redis, db, cluster, totals, EXPECTED);

  // Redis lost afterwards: the converted base and the log count each point once
  await wipeRedis(redis, cluster);
  totals = await rebuild(redis, db, cluster, layout);
  await check(t, 'rebuilt again after the migration', redis, db, cluster, totals, EXPECTED);
});

t.test('the upgrade hour: migrated before any new node ran, timeline dropped', async (t) => {
  const { redis, db, cluster } = await connected(t, 'upgrade-hour-migrated');
  await writeTimeline(db);
  const layout = await loadLayout(db, settings, UPGRADE);
  await migrateLegacy(db, layout, log);
  await db.dropCollection(collectionNames.legacyTimeline);
  const totals = await rebuild(redis, db, cluster, layout);
  await check(t, 'migrated first', redis, db, cluster, totals, (UPGRADE - OLD_FROM) / MIN);
});

t.test('migrated and dropped, the timeline ending before the layout: the rebuild still adds its base', async (t) => {
  const { redis, db, cluster } = await connected(t, 'upgrade-hour-base');
  await writeTimeline(db, FIRST);
  const layout = await loadLayout(db, settings, UPGRADE);
  await migrateLegacy(db, layout, log);
  await db.dropCollection(collectionNames.legacyTimeline);
  const totals = await rebuild(redis, db, cluster, layout);
  await check(t, 'only a base', redis, db, cluster, totals, (FIRST - OLD_FROM) / MIN);
});
