import type { RedisClient } from '../../shared/redis.js';
import type { Db } from 'mongodb';
import { sliceKeys } from '../../shared/keys.js';
import { decodeBucket, decodeOpen, decodeRollup, summarize, type BucketSummary, type Point } from '../format/codec.js';
import { type StorageLayout } from '../format/layout.js';
import { type PayloadDoc, collectionNames, docIds, type LayoutDoc, type LegacyPoint } from '../format/documents.js';

/** Finds in flight for one read: FerretDB serves each from its `_id` index; more would only queue. */
const FINDS_IN_FLIGHT = 8;
/** How long the answer to "is there data of the previous layout" is kept. */
const LEGACY_CHECK_MS = 60_000;

/**
 * Reads one pk's timeline by exact `_id`s derived from (pk, period), never by a scan (DESIGN.md
 * beside this file): a period still open comes from its buffer in Redis, a closed one from its
 * bucket, a whole rollup period from its rollup. Ranges before the layout's first period are read
 * from the previous layout's `timeline` collection while it exists (`influencer-node migrate`
 * converts it).
 */
export class TimelineReader {
  /** where the previous layout's data is: converted to buckets from a period, or still in `timeline` */
  private legacy?: { at: number; where: Promise<{ convertedFrom: number | null; timeline: boolean }> };

  constructor(
    private readonly redis: RedisClient,
    private readonly db: Db,
    readonly layout: StorageLayout,
    private readonly cluster: string,
  ) {}

  /** Every point of the pk in [from, to), in time order. */
  async points(pk: number, from: number, to: number): Promise<Point[]> {
    if (to <= from) return [];
    const { firstPeriod } = this.layout;
    const legacy = from < firstPeriod ? await this.legacyWhere() : { convertedFrom: null, timeline: false };
    const periods = this.layout.periods(Math.max(from, legacy.convertedFrom ?? firstPeriod), to);
    const [old, lists] = await Promise.all([
      legacy.timeline && legacy.convertedFrom === null ? this.legacyPoints(pk, from, Math.min(to, firstPeriod)) : [],
      this.periodPoints(pk, periods),
    ]);
    return [...old, ...lists.flat()].filter((p) => p.at >= from && p.at < to);
  }

  /**
   * One summary per bucket of the pk in [from, to) (by bucket start, in time order): from the rollup
   * of each rollup period where it exists, else from that period's buckets and buffers.
   */
  async buckets(pk: number, from: number, to: number): Promise<Array<{ at: number; s: BucketSummary }>> {
    if (to <= from) return [];
    const { rollupMs, bucketMs } = this.layout;
    const starts: number[] = [];
    for (let r = this.layout.rollup(from); r < to; r += rollupMs) starts.push(r);
    const rollups = await mapLimit(starts, FINDS_IN_FLIGHT, (r) =>
      this.db.collection<PayloadDoc>(collectionNames.rollups(r)).findOne({ _id: docIds.rollup(pk, r) }),
    );
    const out: Array<{ at: number; s: BucketSummary }> = [];
    const missing: number[] = [];
    starts.forEach((r, i) => {
      const doc = rollups[i];
      // the rollup period in which this layout began has converted buckets that its rollup lacks
      const upgradeDay = r <= this.layout.firstPeriod && this.layout.firstPeriod < r + rollupMs;
      if (doc && !upgradeDay) out.push(...decodeRollup(r, doc.b.buffer));
      else missing.push(r);
    });
    for (const r of missing) {
      const points = await this.points(pk, Math.max(from, r), Math.min(to, r + rollupMs));
      for (let i = 0; i < points.length;) {
        const at = this.layout.period(points[i]!.at);
        let j = i;
        while (j < points.length && points[j]!.at < at + bucketMs) j++;
        out.push({ at, s: summarize(points.slice(i, j)) });
        i = j;
      }
    }
    return out.filter((b) => b.at + bucketMs > from && b.at < to).sort((a, b) => a.at - b.at);
  }

  /** Per period: its open buffer if Redis still has it, else its bucket. */
  private async periodPoints(pk: number, periods: number[]): Promise<Point[][]> {
    if (periods.length === 0) return [];
    const pipeline = this.redis.pipeline();
    const keys = sliceKeys(this.cluster, this.layout.slices, this.layout.slice(pk));
    for (const p of periods) pipeline.getBuffer(keys.open(p, pk));
    const replies = (await pipeline.exec()) ?? [];
    return mapLimit(periods, FINDS_IN_FLIGHT, async (p, i) => {
      const [err, open] = replies[i] ?? [null, null];
      if (err) throw err;
      if (open) return decodeOpen(p, open as Buffer);
      const doc = await this.db
        .collection<PayloadDoc>(collectionNames.buckets(p))
        .findOne({ _id: docIds.bucket(pk, p) });
      return doc ? decodeBucket(p, doc.b.buffer) : [];
    });
  }

  /** Whether the previous layout's data was converted (and from when), or is still in `timeline`; checked once a minute. */
  private legacyWhere(): Promise<{ convertedFrom: number | null; timeline: boolean }> {
    const now = Date.now();
    if (!this.legacy || now - this.legacy.at > LEGACY_CHECK_MS) {
      const where = Promise.all([
        this.db.collection<LayoutDoc>(collectionNames.meta).findOne({ _id: 'layout' }),
        this.db.listCollections({ name: collectionNames.legacyTimeline }, { nameOnly: true }).toArray(),
      ]).then(([doc, found]) => ({ convertedFrom: doc?.convertedFrom ?? null, timeline: found.length > 0 }));
      where.catch(() => {
        this.legacy = undefined;
      });
      this.legacy = { at: now, where };
    }
    return this.legacy.where;
  }

  private async legacyPoints(pk: number, from: number, to: number): Promise<Point[]> {
    const id = (t: number): string => `${String(pk).padStart(10, '0')}:${String(Math.max(0, t)).padStart(13, '0')}`;
    const docs = await this.db
      .collection<LegacyPoint>(collectionNames.legacyTimeline)
      .find({ _id: { $gte: id(from), $lt: id(to) } }, { projection: { t: 1, f: 1, g: 1 } })
      .sort({ _id: 1 })
      .toArray();
    return docs.map((d) => ({ at: d.t.getTime(), f: d.f, g: d.g }));
  }
}

/** `fn` over `items` with at most `limit` calls pending, results in the order of `items`. */
export async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
