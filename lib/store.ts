import { randomInt } from 'node:crypto';
import type { Collection, Db } from 'mongodb';
import { MongoBulkWriteError } from 'mongodb';
import { TotalsNotReady, type Totals } from './totals.js';

/** One fetched sample, stamped with the interval it belongs to (not the fetch time). */
export interface Sample {
  pk: number;
  /** start of the interval, epoch ms */
  at: number;
  username: string;
  followerCount: number;
  followingCount: number;
  /** when it was due (epoch ms); not stored, used for lateness figures */
  due?: number;
}

/**
 * One timeline point: one document per (pk, interval). The _id sorts by pk then time, so a pk's
 * range is an _id index range scan, and inserting the same point twice is a duplicate key.
 */
export interface PointDoc {
  _id: string;
  pk: number;
  t: Date;
  /** followerCount */
  f: number;
  /** followingCount */
  g: number;
  /** token of the batch that wrote it: a retried batch recognises its own points */
  w: number;
}

/**
 * The durable list of tracked influencers, written once per pk. Documents written by an earlier
 * version may carry the daily suspicious flag; a totals rebuild still reads it.
 */
export interface InfluencerDoc {
  _id: number;
  username: string;
  firstAt: Date;
  suspicious?: boolean;
  suspiciousAt?: Date;
}

/**
 * One daily is_suspicious answer: one document per (pk, check period), `_id` like a timeline
 * point's, so storing it is an insert and a second answer in the same period a duplicate key.
 */
export interface SuspiciousDoc {
  _id: string;
  pk: number;
  /** when the answer was stored */
  at: Date;
  suspicious: boolean;
}

export function pointId(pk: number, at: number): string {
  return `${String(pk).padStart(10, '0')}:${String(at).padStart(13, '0')}`;
}

export function collections(db: Db): { influencers: Collection<InfluencerDoc>; timeline: Collection<PointDoc>; suspicious: Collection<SuspiciousDoc> } {
  return { influencers: db.collection<InfluencerDoc>('influencers'), timeline: db.collection<PointDoc>('timeline'), suspicious: db.collection<SuspiciousDoc>('suspicious') };
}

/** Creates the indexes the reads and retention use; safe to run on every start and on every node. */
export async function ensureIndexes(db: Db): Promise<void> {
  await collections(db).timeline.createIndexes([{ key: { t: 1 }, name: 't' }]);
}

export const DUPLICATE_KEY = 11000;

/** A batch in flight; its steps are remembered so a retry resumes where the last attempt failed. */
export interface PendingBatch {
  samples: Sample[];
  token: number;
  attempts: number;
  /** step 1 done: the samples this batch stored */
  stored?: Sample[];
  duplicates?: number;
  rejected?: number;
  /** step 2 done: pks seen for the first time */
  fresh?: number[];
  /** step 2 found the totals missing: the rebuild from MongoDB counts these points */
  leftToRebuild?: boolean;
  /** step 3 done */
  done?: boolean;
}

/**
 * Writes a batch idempotently per (pk, interval), in three steps, each safe to retry:
 * 1. insert the timeline points (unordered insertMany); an existing point is a duplicate key:
 *    another owner or a replay wrote it, so it is counted and dropped; on a retry, points carrying
 *    this batch's token are recognised as stored by the earlier attempt;
 * 2. apply the stored samples to the running totals and rank in Redis (one Lua call, once per
 *    batch token); if Redis has lost the totals, the rebuild counts these points instead;
 * 3. insert an influencer document for each pk seen for the first time.
 * Inserts only: FerretDB 1.24 (SQLite) takes ~10 ms per update but ~70 µs per inserted document.
 */
export class BatchWriter {
  private readonly timeline: Collection<PointDoc>;
  private readonly influencers: Collection<InfluencerDoc>;

  constructor(db: Db, private readonly totals: Totals) {
    ({ timeline: this.timeline, influencers: this.influencers } = collections(db));
  }

  static batch(samples: Sample[]): PendingBatch {
    return { samples, token: randomInt(1, 2 ** 47) * 2 + 1, attempts: 0 };
  }

  /**
   * Runs the steps not yet done; throws if one fails (call again to retry). Step 2 waits for
   * `totalsTurn`, so batches written at once reach the running totals in the order they were made.
   */
  async write(batch: PendingBatch, totalsTurn?: Promise<unknown>): Promise<void> {
    batch.attempts++;
    if (!batch.stored) {
      const { stored, duplicates, rejected } = await this.insertPoints(batch.samples, batch.token, batch.attempts > 1);
      batch.stored = stored;
      batch.duplicates = duplicates;
      batch.rejected = rejected;
    }
    if (!batch.fresh) {
      await totalsTurn;
      try {
        batch.fresh = (await this.totals.apply(batch.stored, batch.token)) ?? [];
      } catch (err) {
        // Redis lost the totals: these points are in MongoDB, so the rebuild will count them
        if (!(err instanceof TotalsNotReady)) throw err;
        batch.fresh = [];
        batch.leftToRebuild = true;
      }
    }
    if (!batch.done) {
      if (batch.fresh.length > 0) {
        const firstOf = new Map<number, Sample>();
        for (const s of batch.stored) if (!firstOf.has(s.pk)) firstOf.set(s.pk, s);
        const docs = batch.fresh.map((pk) => ({ _id: pk, username: firstOf.get(pk)?.username ?? '', firstAt: new Date(firstOf.get(pk)?.at ?? Date.now()) }));
        await this.insertIgnoringDuplicates(this.influencers, docs);
      }
      batch.done = true;
    }
  }

  private async insertPoints(samples: Sample[], token: number, retry: boolean): Promise<{ stored: Sample[]; duplicates: number; rejected: number }> {
    const docs: PointDoc[] = samples.map((s) => ({ _id: pointId(s.pk, s.at), pk: s.pk, t: new Date(s.at), f: s.followerCount, g: s.followingCount, w: token }));
    const failed = await this.insertIgnoringDuplicates(this.timeline, docs);
    if (failed.duplicates.length === 0 && failed.rejected.length === 0) return { stored: samples, duplicates: 0, rejected: 0 };
    let ours = new Set<string>();
    if (retry && failed.duplicates.length > 0) {
      const ids = failed.duplicates.map((i) => docs[i]._id);
      const found = await this.timeline.find({ _id: { $in: ids }, w: token }, { projection: { _id: 1 } }).toArray();
      ours = new Set(found.map((d) => d._id));
    }
    const dropped = new Set([...failed.duplicates.filter((i) => !ours.has(docs[i]._id)), ...failed.rejected]);
    return {
      stored: samples.filter((_, i) => !dropped.has(i)),
      duplicates: dropped.size - failed.rejected.length,
      rejected: failed.rejected.length,
    };
  }

  /**
   * Inserts unordered; returns the indexes that failed as duplicates and those refused for another
   * reason. Any other error (server down) is thrown. Does not rely on the server carrying on after
   * a write error: what followed the first error is inserted again (a duplicate of our own is
   * then reported as such, and step 1 recognises it by its token).
   */
  private async insertIgnoringDuplicates<T extends { _id: unknown }>(col: Collection<T>, docs: T[]): Promise<{ duplicates: number[]; rejected: number[] }> {
    const duplicates: number[] = [];
    const rejected: number[] = [];
    let pending = docs.map((_, i) => i);
    while (pending.length > 0) {
      try {
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        await col.insertMany(pending.map((i) => docs[i]) as any, { ordered: false });
        break;
      } catch (err) {
        if (!(err instanceof MongoBulkWriteError)) throw err;
        const errors = [err.writeErrors].flat();
        if (errors.length === 0) throw err;
        const errored = new Set<number>();
        for (const e of errors) {
          errored.add(e.index);
          (e.code === DUPLICATE_KEY ? duplicates : rejected).push(pending[e.index]);
        }
        const inserted = err.result?.insertedCount ?? 0;
        // all but the errored ones went in: done
        if (inserted + errored.size >= pending.length) break;
        const first = Math.min(...errored);
        pending = pending.filter((_, n) => n > first && !errored.has(n));
      }
    }
    return { duplicates, rejected };
  }
}
