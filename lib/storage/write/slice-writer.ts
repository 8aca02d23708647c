import { Binary, type Db } from 'mongodb';
import {
  encodeBucket,
  encodeCheckpoint,
  encodeRollup,
  decodeCheckpoint,
  type BucketSummary,
  type PkTotals,
  type Point,
} from '../format/codec.js';
import { insertIgnoringDuplicates, insertOnce } from '../../shared/mongo-errors.js';
import { type StorageLayout } from '../format/layout.js';
import { collectionNames, docIds, type CheckpointDoc, type PayloadDoc } from '../format/documents.js';

/** documents per insert */
const CHUNK = 1000;

/**
 * Writes what a closed period leaves of one slice: its buckets, its checkpoint and, when the period
 * ends a rollup period, the slice's rollups (from the summaries in the checkpoints of the rollup
 * period's buckets). Every write is an insert of a document derived from the period's points alone,
 * so writing the same period again changes nothing. The closer feeds it from the open buffers; the
 * storage benchmark from generated points.
 */
export class SliceWriter {
  constructor(
    private readonly db: Db,
    private readonly layout: StorageLayout,
  ) {}

  /** One bucket per pk with points in the period. */
  async buckets(period: number, lists: Array<[number, Point[]]>): Promise<void> {
    const { intervalMs, bucketMs } = this.layout;
    const col = this.db.collection<PayloadDoc>(collectionNames.buckets(period));
    for (let i = 0; i < lists.length; i += CHUNK) {
      const docs = lists.slice(i, i + CHUNK).map(([pk, list]) => ({
        _id: docIds.bucket(pk, period),
        b: new Binary(encodeBucket(period, intervalMs, bucketMs, list)),
      }));
      if (docs.length > 0) await insertIgnoringDuplicates(col, docs);
    }
  }

  /** The slice's totals as of the period's end, with the summaries of its bucket. */
  async checkpoint(
    period: number,
    slice: number,
    totals: ReadonlyMap<number, PkTotals>,
    summaries: ReadonlyMap<number, BucketSummary>,
  ): Promise<void> {
    const doc: CheckpointDoc = {
      _id: docIds.checkpoint(period, slice),
      p: period,
      s: slice,
      c: totals.size,
      b: new Binary(encodeCheckpoint(period + this.layout.bucketMs, [...totals.values()], summaries)),
    };
    await insertOnce(this.db.collection<CheckpointDoc>(collectionNames.checkpoints), doc);
  }

  /** The slice's rollups for the rollup period ending with `lastPeriod`, whose own summaries are `last`. */
  async rollups(lastPeriod: number, slice: number, last: ReadonlyMap<number, BucketSummary>): Promise<void> {
    const { bucketMs } = this.layout;
    const start = this.layout.rollup(lastPeriod);
    const byPk = new Map<number, Array<{ index: number; s: BucketSummary }>>();
    const add = (pk: number, index: number, s: BucketSummary): void => {
      let list = byPk.get(pk);
      if (!list) byPk.set(pk, (list = []));
      list.push({ index, s });
    };
    const checkpoints = this.db.collection<CheckpointDoc>(collectionNames.checkpoints);
    for (let p = start; p < lastPeriod; p += bucketMs) {
      const doc = await checkpoints.findOne({ _id: docIds.checkpoint(p, slice) });
      if (!doc) continue;
      for (const [pk, s] of decodeCheckpoint(p + bucketMs, doc.b.buffer).summaries) add(pk, (p - start) / bucketMs, s);
    }
    for (const [pk, s] of last) add(pk, (lastPeriod - start) / bucketMs, s);
    const docs: PayloadDoc[] = [...byPk].map(([pk, list]) => ({
      _id: docIds.rollup(pk, start),
      b: new Binary(encodeRollup(bucketMs, list)),
    }));
    const col = this.db.collection<PayloadDoc>(collectionNames.rollups(start));
    for (let i = 0; i < docs.length; i += CHUNK) await insertIgnoringDuplicates(col, docs.slice(i, i + CHUNK));
  }
}
