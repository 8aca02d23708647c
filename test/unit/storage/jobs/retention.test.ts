// Retention: whole collections past their settings are dropped, a closed period's log after
// LOG_RETENTION_HOURS, checkpoints deleted by _id beyond what each slice needs; nothing else.
import t from 'tap';
import { RetentionJob } from '../../../../lib/storage/jobs/retention.js';
import { sample, storageKit, HOUR, MIN } from '../../../helpers/storage.js';
import { collectionNames, docIds } from '../../../../lib/storage/format/documents.js';

const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 10, 1);
const BUCKET = 10 * MIN;

t.test('retention drops expired collections and old checkpoints, keeps the rest', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  // 40 periods of data, closed: 40 checkpoints of the pk's slice (the others never had one)
  for (let m = 0; m < 400; m += 10)
    await k.store(Array.from({ length: 10 }, (_, i) => sample(1_000_001, T0 + (m + i) * MIN, 100 + m + i)));
  k.clock.now = T0 + 400 * MIN + BUCKET;
  await k.closer.closeDue();
  t.equal(await k.db.collection(collectionNames.checkpoints).countDocuments({}), 40);
  const settings = { timelineRetentionDays: 30, rollupRetentionDays: 365, logRetentionHours: 24 };
  const job = new RetentionJob(k.deps, { settings, now: () => k.clock.now });

  // daily answers: one collection per check period
  for (const day of [0, 1, 2]) await k.db.collection(`suspicious_${T0 + day * DAY}`).insertOne({ _id: 'x' as never });
  const first = await job.runOnce();
  t.same(first?.dropped, [`suspicious_${T0}`], 'only the answers of all but the two newest check periods');
  t.equal(first?.checkpoints, 40 - 27, 'checkpoints older than the 26 before the newest deleted');
  t.ok(
    await k.db
      .collection(collectionNames.checkpoints)
      .findOne({ _id: docIds.checkpoint(T0 + 39 * BUCKET, k.layout.slice(1_000_001)) as never }),
    'the newest kept',
  );

  // a day later the closed periods' logs go; 31 days later the buckets; a year and more the rollups
  k.clock.now = T0 + 400 * MIN + 25 * HOUR;
  const logs = (await job.runOnce())!.dropped;
  t.equal(logs.length, 40, "every closed period's log");
  t.ok(logs.every((n) => n.startsWith('log_')));
  k.clock.now = T0 + 32 * DAY;
  t.same((await job.runOnce())!.dropped, [collectionNames.buckets(T0)], "the day's buckets after 30 days");
  t.same(await k.points(1_000_001, T0, T0 + DAY), [], 'and its points are gone');
  k.clock.now = T0 + 400 * DAY;
  t.same((await job.runOnce())!.dropped, [collectionNames.rollups(T0)], "the month's rollups after 365 days");
  const names = (await k.db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name).sort();
  t.same(
    names.filter((n) => /^(log|buckets|rollups)_/.test(n)),
    [],
    'no expired collection left',
  );
  t.ok(names.includes(collectionNames.checkpoints) && names.includes(collectionNames.meta), 'the others stay');
});

t.test("an unclosed period's log is kept however old", async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await k.store([sample(1_000_001, T0 + MIN, 100)]);
  const settings = { timelineRetentionDays: 30, rollupRetentionDays: 365, logRetentionHours: 1 };
  const job = new RetentionJob(k.deps, { settings, now: () => T0 + 10 * DAY });
  t.same((await job.runOnce())!.dropped, [], 'not closed: not dropped');
});
