// What the jobs read of the totals already stored in MongoDB: the newest checkpoint of a slice
// (the close of the next period and the rebuild start from it) and the base of the previous
// layout's points (what `influencer-node migrate` converted, or the legacy timeline itself).
import type { RedisClient } from '../../shared/redis.js';
import type { Db } from 'mongodb';
import type { Logger } from '../../shared/log.js';
import { SLICE_MARKS, type SliceKeys } from '../../shared/keys.js';
import { addPoint, decodeCheckpoint, emptyTotals, type PkTotals } from '../format/codec.js';
import {
  collectionNames,
  docIds,
  type BaseDoc,
  type CheckpointDoc,
  type LegacyPoint,
  type MigrateProgress,
} from '../format/documents.js';
import type { StorageLayout } from '../format/layout.js';
import { LegacyTail, legacyPoint, legacyTailLogged } from './legacy-tail.js';

/**
 * The newest checkpoint of a slice at or before `before`: the period Redis remembers, else found by
 * looking back period by period (after Redis lost its data) as far as the layout's first period.
 */
export async function newestCheckpoint(
  redis: RedisClient,
  db: Db,
  layout: StorageLayout,
  keys: SliceKeys,
  slice: number,
  before: number,
): Promise<CheckpointDoc | null> {
  const checkpoints = db.collection<CheckpointDoc>(collectionNames.checkpoints);
  const remembered = await redis.hget(keys.marks, SLICE_MARKS.checkpoint);
  if (remembered !== null && Number(remembered) <= before) {
    const doc = await checkpoints.findOne({ _id: docIds.checkpoint(Number(remembered), slice) });
    if (doc) return doc;
  }
  for (let p = layout.period(before); p >= layout.firstPeriod - layout.bucketMs; p -= layout.bucketMs) {
    const doc = await checkpoints.findOne({ _id: docIds.checkpoint(p, slice) });
    if (doc) return doc;
  }
  return null;
}

/**
 * The totals of the previous layout's points before the layout's first period, for a rebuild: the
 * base documents of a finished migration; while none ran, computed from `timeline` itself (it reads
 * the whole collection), and in the same pass its points of the layout's own periods (the hour the
 * first node of this version started in) are logged into them, once, for the rebuild to count.
 */
export async function legacyTotals(db: Db, layout: StorageLayout, log: Logger): Promise<PkTotals[]> {
  const state = await db.collection<MigrateProgress>(collectionNames.meta).findOne({ _id: 'migrate' });
  if (state?.done) {
    const out: PkTotals[] = [];
    for await (const doc of db.collection<BaseDoc>(collectionNames.migrationBase).find({}))
      out.push(...decodeCheckpoint(doc.e, doc.b.buffer).totals);
    return out;
  }
  const exists =
    (await db.listCollections({ name: collectionNames.legacyTimeline }, { nameOnly: true }).toArray()).length > 0;
  if (!exists) return [];
  log.warn("the previous layout's timeline is not migrated: the rebuild reads all of it (run influencer-node migrate)");
  const tail = (await legacyTailLogged(db)) ? null : new LegacyTail(db, layout);
  const totals = new Map<number, PkTotals>();
  let unreadable = 0;
  const points = db
    .collection<LegacyPoint>(collectionNames.legacyTimeline)
    .find({}, { projection: { pk: 1, t: 1, f: 1, g: 1 } });
  for await (const doc of points) {
    const p = legacyPoint(doc);
    if (!p) {
      unreadable++;
      continue;
    }
    if (p.at >= layout.firstPeriod) {
      await tail?.add(doc._id, p);
      continue;
    }
    let t = totals.get(p.pk);
    if (!t) totals.set(p.pk, (t = emptyTotals(p.pk)));
    addPoint(t, p);
  }
  if (tail) {
    await tail.finish();
    if (tail.points > 0)
      log.info({ points: tail.points }, "the previous layout's points of this layout's periods logged");
  }
  if (unreadable > 0)
    log.warn({ documents: unreadable }, "documents of the previous layout's timeline left out: not a point");
  return [...totals.values()];
}
