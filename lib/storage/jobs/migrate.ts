import { Binary, type Db } from 'mongodb';
import type { Logger } from '../../shared/log.js';
import {
  addPoint,
  emptyTotals,
  encodeBucket,
  encodeCheckpoint,
  encodeRollup,
  summarize,
  type BucketSummary,
  type PkTotals,
  type Point,
} from '../format/codec.js';
import { insertIgnoringDuplicates, insertOnce } from '../../shared/mongo-errors.js';
import { type StorageLayout } from '../format/layout.js';
import { LegacyTail, legacyPoint, legacyTailLogged } from './legacy-tail.js';
import {
  type PayloadDoc,
  collectionNames,
  docIds,
  type LayoutDoc,
  type LegacyPoint,
  type BaseDoc,
  type MigrateProgress,
} from '../format/documents.js';

/** pks per base document (and per progress step): one document stays near 1 MB */
const BASE_PKS = 16_384;
/** bucket documents per insert */
const INSERT_CHUNK = 1000;

export interface MigrateReport {
  /** points converted into buckets (those before the layout's first period) */
  points: number;
  /** points of the layout's own periods, logged into them (legacy-tail.ts) */
  logged: number;
  /** documents of `timeline` that hold no point, left alone */
  unreadable: number;
  buckets: number;
  pks: number;
  resumedFrom: string | null;
  alreadyDone: boolean;
}

/**
 * Converts the previous layout (`timeline`, one document per sample) into buckets and rollups, and
 * keeps the totals of its points as base documents that a rebuild adds under the checkpoints.
 * One pass in `_id` order (pk, then time); progress is recorded once per BASE_PKS pks, so an
 * interrupted run resumes after the last complete pk, and every write is an insert of the same
 * document, so a repeated one changes nothing. When done, the layout records where the converted
 * buckets begin (`convertedFrom`), so reads find them there instead of in `timeline`. Points of the
 * layout's own periods (written in the hour the first node of this version started) are logged into
 * those periods, unless a rebuild did so already (legacy-tail.ts).
 */
export async function migrateLegacy(
  db: Db,
  layout: StorageLayout,
  log: Logger,
  progress: (line: string) => void = () => undefined,
  basePks = BASE_PKS,
): Promise<MigrateReport> {
  const meta = db.collection<MigrateProgress>(collectionNames.meta);
  const state = await meta.findOne({ _id: 'migrate' });
  if (state?.done) {
    return { points: state.points, buckets: 0, pks: 0, logged: 0, unreadable: 0, resumedFrom: null, alreadyDone: true };
  }
  const legacy = db.collection<LegacyPoint>(collectionNames.legacyTimeline);
  const total = await legacy.estimatedDocumentCount();
  let chunks = state?.chunks ?? 0;
  let points = state?.points ?? 0;
  const resumedFrom = state?.last ?? null;
  const cursor = legacy.find(resumedFrom ? { _id: { $gt: resumedFrom } } : {}).sort({ _id: 1 });
  let oldest = state?.oldest ?? Infinity;
  let pending: Array<{ collection: string; doc: PayloadDoc }> = [];
  let bucketCount = 0;
  let pks = 0;
  let base: PkTotals[] = [];
  let current:
    | {
        pk: number;
        totals: PkTotals;
        period: number;
        list: Point[];
        lastId: string;
        rollups: Map<number, Array<{ index: number; s: BucketSummary }>>;
      }
    | undefined;
  const started = performance.now();
  // logged already by a rebuild that read the timeline, or by an earlier run
  const tail = (await legacyTailLogged(db)) ? null : new LegacyTail(db, layout);
  let unreadable = 0;

  const flushDocs = async (): Promise<void> => {
    const byCollection = new Map<string, PayloadDoc[]>();
    for (const { collection, doc } of pending) {
      let list = byCollection.get(collection);
      if (!list) byCollection.set(collection, (list = []));
      list.push(doc);
    }
    for (const [name, docs] of byCollection) await insertIgnoringDuplicates(db.collection<PayloadDoc>(name), docs);
    pending = [];
  };
  const closeBucket = (): void => {
    if (!current || current.list.length === 0) return;
    const { pk, period, list } = current;
    const b = new Binary(encodeBucket(period, layout.intervalMs, layout.bucketMs, list));
    pending.push({ collection: collectionNames.buckets(period), doc: { _id: docIds.bucket(pk, period), b } });
    bucketCount++;
    const r = layout.rollup(period);
    const entry = current.rollups.get(r) ?? [];
    entry.push({ index: (period - r) / layout.bucketMs, s: summarize(list) });
    current.rollups.set(r, entry);
    current.list = [];
  };
  const closePk = async (): Promise<void> => {
    if (!current) return;
    closeBucket();
    // the rollup period holding the layout's first period is read from its buckets (see TimelineReader)
    for (const [r, list] of current.rollups) {
      if (r + layout.rollupMs > layout.firstPeriod) continue;
      const b = new Binary(encodeRollup(layout.bucketMs, list));
      pending.push({ collection: collectionNames.rollups(r), doc: { _id: docIds.rollup(current.pk, r), b } });
    }
    base.push(current.totals);
    pks++;
    if (pending.length >= INSERT_CHUNK) await flushDocs();
    if (base.length >= basePks) await commit(current.lastId);
  };
  const commit = async (lastId: string): Promise<void> => {
    await flushDocs();
    await tail?.flush();
    if (base.length > 0) {
      const b = new Binary(encodeCheckpoint(layout.firstPeriod, base, new Map()));
      await insertOnce(db.collection<BaseDoc>(collectionNames.migrationBase), {
        _id: `base:${chunks}`,
        c: base.length,
        e: layout.firstPeriod,
        b,
      });
      chunks++;
      base = [];
    }
    const mark = { last: lastId, chunks, points, oldest: Number.isFinite(oldest) ? oldest : 0, done: false };
    await meta.updateOne({ _id: 'migrate' }, { $set: mark }, { upsert: true });
    const n = (x: number): string => x.toLocaleString('en-US');
    const s = Math.round((performance.now() - started) / 1000);
    progress(`  ${n(points)} of about ${n(total)} points, ${n(bucketCount)} buckets (${s} s)`);
  };

  for await (const doc of cursor) {
    const p = legacyPoint(doc);
    if (!p) {
      unreadable++;
      continue;
    }
    // a point of the layout's own periods goes to their log, where the nodes' samples of them are
    if (await tail?.add(doc._id, p)) continue;
    if (p.at >= layout.firstPeriod) continue;
    const at = p.at;
    oldest = Math.min(oldest, at);
    if (!current || current.pk !== doc.pk) {
      await closePk();
      current = {
        pk: doc.pk,
        totals: emptyTotals(doc.pk),
        period: layout.period(at),
        list: [],
        lastId: doc._id,
        rollups: new Map(),
      };
    }
    const period = layout.period(at);
    if (period !== current.period) {
      closeBucket();
      current.period = period;
    }
    const point = { at, f: p.f, g: p.g };
    current.list.push(point);
    addPoint(current.totals, point);
    current.lastId = doc._id;
    points++;
  }
  await closePk();
  await commit(current?.lastId ?? resumedFrom ?? '');
  if (Number.isFinite(oldest)) {
    const convertedFrom = layout.period(oldest);
    await db.collection<LayoutDoc>(collectionNames.meta).updateOne({ _id: 'layout' }, { $set: { convertedFrom } });
  }
  await tail?.finish();
  await meta.updateOne({ _id: 'migrate' }, { $set: { done: true } });
  const logged = tail?.points ?? 0;
  log.info({ points, buckets: bucketCount, pks, logged, unreadable }, 'previous layout converted');
  return { points, buckets: bucketCount, pks, logged, unreadable, resumedFrom, alreadyDone: false };
}
