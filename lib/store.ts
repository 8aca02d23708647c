import { randomInt } from 'node:crypto';
import type { AnyBulkWriteOperation, Collection, Db, Document } from 'mongodb';
import { MongoBulkWriteError } from 'mongodb';

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

export interface TimelineDoc {
  _id: string;
  pk: number;
  /** start of the bucket: 60 intervals */
  t: Date;
  /** interval length in ms (60000: the bucket is one UTC hour, slots are minutes) */
  iv: number;
  f: Record<string, number>;
  g: Record<string, number>;
  /** writer token per slot: lets a retried flush recognise its own points */
  w: Record<string, number>;
}

export interface InfluencerDoc {
  _id: number;
  username: string;
  samples: number;
  followerSum: number;
  followerMin: number;
  followerMax: number;
  latest: { at: Date; followerCount: number; followingCount: number };
  /** token of the last batch applied: a replayed batch is recognised, not counted twice */
  lb: number;
  suspicious?: boolean;
  suspiciousAt?: Date;
}

export const SLOTS_PER_BUCKET = 60;

export function bucketOf(at: number, intervalMs: number): { start: number; slot: number } {
  const k = Math.floor(at / intervalMs);
  const bucket = Math.floor(k / SLOTS_PER_BUCKET);
  return { start: bucket * SLOTS_PER_BUCKET * intervalMs, slot: k - bucket * SLOTS_PER_BUCKET };
}

export function bucketId(pk: number, intervalMs: number, start: number): string {
  return `${pk}:${intervalMs}:${start}`;
}

export function collections(db: Db): { influencers: Collection<InfluencerDoc>; timeline: Collection<TimelineDoc> } {
  return { influencers: db.collection<InfluencerDoc>('influencers'), timeline: db.collection<TimelineDoc>('timeline') };
}

/** Creates the indexes the reads use; safe to run on every start and on every node. */
export async function ensureIndexes(db: Db): Promise<void> {
  const { timeline } = collections(db);
  await timeline.createIndexes([{ key: { pk: 1, t: 1 }, name: 'pk_t' }, { key: { t: 1 }, name: 't' }]);
}

const DUPLICATE_KEY = 11000;

export interface BatchResult {
  /** samples newly stored */
  stored: Sample[];
  /** samples whose (pk, interval) point already existed: another owner or a replay wrote it */
  duplicates: number;
  /** samples refused by the server for another reason (not retried) */
  rejected: number;
}

/**
 * Writes one batch idempotently per (pk, interval), in two steps:
 * 1. timeline points, each inserted only if its slot is empty (`f.<slot>` $exists false + upsert:
 *    an existing point makes the upsert collide on _id → duplicate key, nothing changes);
 * 2. for the points step 1 stored, one update per pk: running samples / followerSum / min / max and
 *    the latest counts ($max on {at, …} keeps the newest), guarded by the batch token `lb` so a
 *    retried step 2 is not counted twice.
 * Either step may be retried after any failure; the token tells our own earlier writes from
 * another node's. Unordered bulk writes are used, but the code does not rely on the server
 * carrying on after an error (FerretDB 1.24 stops at the first one).
 */
export class BatchWriter {
  private readonly timeline: Collection<TimelineDoc>;
  private readonly influencers: Collection<InfluencerDoc>;

  constructor(db: Db, private readonly intervalMs: number) {
    ({ timeline: this.timeline, influencers: this.influencers } = collections(db));
  }

  /** A fresh token per batch (never reused for another batch). */
  static token(): number {
    return randomInt(1, 2 ** 47) * 2 + 1;
  }

  /** Step 1. Returns the samples stored by this batch (including by an earlier attempt of it). */
  async writePoints(samples: Sample[], token: number): Promise<{ stored: Sample[]; duplicates: number; rejected: number }> {
    const ops = samples.map((s): AnyBulkWriteOperation<TimelineDoc> => {
      const { start, slot } = bucketOf(s.at, this.intervalMs);
      return {
        updateOne: {
          filter: { _id: bucketId(s.pk, this.intervalMs, start), [`f.${slot}`]: { $exists: false } },
          update: {
            $set: { [`f.${slot}`]: s.followerCount, [`g.${slot}`]: s.followingCount, [`w.${slot}`]: token },
            $setOnInsert: { pk: s.pk, t: new Date(start), iv: this.intervalMs },
          },
          upsert: true,
        },
      };
    });
    const { failed, rejected } = await this.bulk(this.timeline, ops);
    if (failed.length === 0) return { stored: samples, duplicates: 0, rejected: rejected.length };
    // a duplicate is ours when an earlier attempt of this batch wrote it
    const ids = failed.map((i) => (ops[i] as { updateOne: { filter: { _id: string } } }).updateOne.filter._id);
    const docs = await this.timeline.find({ _id: { $in: [...new Set(ids)] } }, { projection: { w: 1 } }).toArray();
    const writers = new Map(docs.map((d) => [d._id, d.w ?? {}]));
    const foreign = new Set(failed.filter((i, n) => {
      const { slot } = bucketOf(samples[i].at, this.intervalMs);
      return writers.get(ids[n])?.[String(slot)] !== token;
    }));
    for (const i of rejected) foreign.add(i);
    return { stored: samples.filter((_, i) => !foreign.has(i)), duplicates: foreign.size - rejected.length, rejected: rejected.length };
  }

  /** Step 2 for the stored samples: one update per pk. */
  async writeTotals(stored: Sample[], token: number): Promise<void> {
    const byPk = new Map<number, Sample[]>();
    for (const s of stored) {
      const list = byPk.get(s.pk);
      if (list) list.push(s); else byPk.set(s.pk, [s]);
    }
    const ops = [...byPk.values()].map((list): AnyBulkWriteOperation<InfluencerDoc> => {
      let sum = 0;
      let min = Infinity;
      let max = -Infinity;
      let latest = list[0];
      for (const s of list) {
        sum += s.followerCount;
        if (s.followerCount < min) min = s.followerCount;
        if (s.followerCount > max) max = s.followerCount;
        if (s.at > latest.at) latest = s;
      }
      return {
        updateOne: {
          filter: { _id: latest.pk, lb: { $ne: token } },
          update: {
            $set: { lb: token, username: latest.username },
            $inc: { samples: list.length, followerSum: sum },
            $min: { followerMin: min },
            $max: { followerMax: max, latest: { at: new Date(latest.at), followerCount: latest.followerCount, followingCount: latest.followingCount } },
          },
          upsert: true,
        },
      };
    });
    let pending = ops;
    for (let round = 0; pending.length > 0; round++) {
      const { failed } = await this.bulk(this.influencers, pending);
      if (failed.length === 0) return;
      // duplicate key: either this batch already applied (lb = token) or two upserts raced
      const ids = failed.map((i) => (pending[i] as { updateOne: { filter: { _id: number } } }).updateOne.filter._id);
      const applied = new Set((await this.influencers.find({ _id: { $in: ids }, lb: token }, { projection: { _id: 1 } }).toArray()).map((d) => d._id));
      pending = failed.filter((_, n) => !applied.has(ids[n])).map((i) => pending[i]);
      if (round > 5) throw new Error(`could not apply totals for ${pending.length} influencers`);
    }
  }

  /**
   * Runs ops unordered until each has either succeeded or failed with a write error; returns the
   * indexes that failed with a duplicate key, and those refused for another reason.
   */
  private async bulk<T extends Document>(col: Collection<T>, ops: AnyBulkWriteOperation<T>[]): Promise<{ failed: number[]; rejected: number[] }> {
    const failed: number[] = [];
    const rejected: number[] = [];
    let pending = ops.map((_, i) => i);
    while (pending.length > 0) {
      try {
        await col.bulkWrite(pending.map((i) => ops[i]), { ordered: false });
        break;
      } catch (err) {
        if (!(err instanceof MongoBulkWriteError) || !err.writeErrors) throw err;
        const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
        if (errors.length === 0) throw err;
        const errored = new Set<number>();
        for (const e of errors) {
          errored.add(e.index);
          (e.code === DUPLICATE_KEY ? failed : rejected).push(pending[e.index]);
        }
        // a server may stop at the first error: resubmit what followed it (idempotent)
        const first = Math.min(...errored);
        pending = pending.filter((_, n) => n > first && !errored.has(n));
      }
    }
    return { failed, rejected };
  }
}
