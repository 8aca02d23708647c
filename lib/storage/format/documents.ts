// Every MongoDB document the storage writes or reads: its shape, the collection it lives in and
// its `_id`, derived from (pk, period) so that reads are finds by exact `_id` (DESIGN.md one folder up).
import type { Binary, Collection, Db } from 'mongodb';

/** The parameters every node of a database must share, stored in `meta` as `{_id: 'layout'}`. */
export interface LayoutDoc {
  _id: 'layout';
  format: 2;
  /** INTERVAL_MS of every node; missing in a layout written by a version that did not store it */
  intervalMs?: number;
  bucketMs: number;
  slices: number;
  /** the first period written in this layout */
  firstPeriod: number;
  /** set by `influencer-node migrate`: the first period of the previous layout's data converted to buckets */
  convertedFrom?: number;
}

export const collectionNames = {
  log: (period: number) => `log_${period}`,
  buckets: (period: number) => `buckets_${utc(period).slice(0, 8)}`,
  rollups: (start: number) => `rollups_${utc(start).slice(0, 6)}`,
  checkpoints: 'checkpoints',
  meta: 'meta',
  /** the previous layout: one document per sample */
  legacyTimeline: 'timeline',
  influencers: 'influencers',
  /** the daily is_suspicious answers of one check period */
  answers: (periodStart: number) => `suspicious_${periodStart}`,
  /** where an older version kept every daily answer */
  legacyAnswers: 'suspicious',
  /** `influencer-node migrate`'s base documents: the totals of the previous layout's points */
  migrationBase: 'migration',
} as const;

/** What a collection of the layout holds, and of which time: the inverse of `collectionNames`. */
export type CollectionKind =
  | { kind: 'log'; period: number }
  | { kind: 'buckets'; day: number }
  | { kind: 'rollups'; month: number }
  | { kind: 'answers'; period: number };

/** The kind and time of a collection named by `collectionNames` (day and month as their UTC start); null for any other. */
export function parseCollectionName(name: string): CollectionKind | null {
  let m = /^log_(\d+)$/.exec(name);
  if (m) return { kind: 'log', period: Number(m[1]) };
  m = /^buckets_(\d{4})(\d{2})(\d{2})$/.exec(name);
  if (m) return { kind: 'buckets', day: Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) };
  m = /^rollups_(\d{4})(\d{2})$/.exec(name);
  if (m) return { kind: 'rollups', month: Date.UTC(Number(m[1]), Number(m[2]) - 1, 1) };
  m = /^suspicious_(\d+)$/.exec(name);
  if (m) return { kind: 'answers', period: Number(m[1]) };
  return null;
}

export const docIds = {
  bucket: (pk: number, period: number) => `${pk}:${period}`,
  rollup: (pk: number, start: number) => `${pk}:${start}`,
  checkpoint: (period: number, slice: number) => `${period}:${slice}`,
};

/** YYYYMMDD of a time, UTC. */
function utc(t: number): string {
  return new Date(t).toISOString().slice(0, 10).replaceAll('-', '');
}

/** The previous layout's document: one per sample, `_id` `<pk, 10 digits>:<interval ms, 13 digits>`. */
export interface LegacyPoint {
  _id: string;
  pk: number;
  t: Date;
  f: number;
  g: number;
}

/** One log document: a write batch's samples of one period. */
export interface LogDoc {
  _id: string;
  /** the node that wrote it */
  n: string;
  /** samples in `b` */
  c: number;
  b: Binary;
}

/** One document per bucket, rollup and checkpoint: `b` is its binary payload (codec.ts beside this file). */
export interface PayloadDoc {
  _id: string;
  b: Binary;
}

export interface CheckpointDoc extends PayloadDoc {
  /** the period it closes */
  p: number;
  /** its slice */
  s: number;
  /** pks in it */
  c: number;
}

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

/** The durable list of tracked influencers, written once per pk (older versions also kept the daily flag here). */
export interface InfluencerDoc {
  _id: number;
  username: string;
  firstAt: Date;
  suspicious?: boolean;
  suspiciousAt?: Date;
}

/**
 * One daily is_suspicious answer: one document per (pk, check period) in the period's collection
 * `suspicious_<period ms>` (an older version kept them all in `suspicious`), `_id`
 * `<pk, 10 digits>:<period ms, 13 digits>`, so storing it is an insert and a second answer in the
 * same period a duplicate key. A period's collection is dropped whole once two newer ones exist.
 */
export interface SuspiciousDoc {
  _id: string;
  pk: number;
  /** when the answer was stored */
  at: Date;
  suspicious: boolean;
}

export function collections(db: Db): {
  influencers: Collection<InfluencerDoc>;
  answers: (periodStart: number) => Collection<SuspiciousDoc>;
  legacyAnswers: Collection<SuspiciousDoc>;
} {
  return {
    influencers: db.collection<InfluencerDoc>(collectionNames.influencers),
    answers: (periodStart) => db.collection<SuspiciousDoc>(collectionNames.answers(periodStart)),
    legacyAnswers: db.collection<SuspiciousDoc>(collectionNames.legacyAnswers),
  };
}

/** The check periods with a collection of answers, newest first. */
export async function answerPeriods(db: Db): Promise<number[]> {
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
  return names
    .flatMap((n) => {
      const c = parseCollectionName(n);
      return c?.kind === 'answers' ? [c.period] : [];
    })
    .sort((a, b) => b - a);
}

/** A daily answer's `_id`: the pk and the start of its check period, zero-padded so ids sort by pk then time. */
export function answerId(pk: number, periodStart: number): string {
  return `${String(pk).padStart(10, '0')}:${String(periodStart).padStart(13, '0')}`;
}

/** The totals of the previous layout's points, one document per 16,384 pks, in `migration` (collectionNames.migrationBase). */
export interface BaseDoc extends PayloadDoc {
  c: number;
  /** the time its latest and previous points are stored relative to */
  e: number;
}

/**
 * Set in `meta` as `{_id: 'legacy-tail'}` once the previous layout's points of this layout's periods
 * (written in the hour its first node started) are in the log (lib/storage/jobs/legacy-tail.ts).
 */
export interface LegacyTailDoc {
  _id: 'legacy-tail';
  points: number;
  at: Date;
}

/** How far a migration got, in `meta` as `{_id: 'migrate'}`: updated once per base document. */
export interface MigrateProgress {
  _id: 'migrate';
  /** the last legacy `_id` whose pk is complete in a base document */
  last: string;
  /** base documents written */
  chunks: number;
  points: number;
  /** the oldest point converted so far */
  oldest: number;
  done: boolean;
}
