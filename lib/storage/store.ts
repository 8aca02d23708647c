import type { Collection, Db } from 'mongodb';

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

const ANSWERS = /^suspicious_(\d+)$/;

export function collections(db: Db): {
  influencers: Collection<InfluencerDoc>;
  answers: (periodStart: number) => Collection<SuspiciousDoc>;
  legacyAnswers: Collection<SuspiciousDoc>;
} {
  return {
    influencers: db.collection<InfluencerDoc>('influencers'),
    answers: (periodStart) => db.collection<SuspiciousDoc>(`suspicious_${periodStart}`),
    legacyAnswers: db.collection<SuspiciousDoc>('suspicious'),
  };
}

/** The check periods with a collection of answers, newest first. */
export async function answerPeriods(db: Db): Promise<number[]> {
  const names = (await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name);
  return names
    .flatMap((n) => {
      const m = ANSWERS.exec(n);
      return m ? [Number(m[1])] : [];
    })
    .sort((a, b) => b - a);
}

/** A daily answer's `_id`: the pk and the start of its check period, zero-padded so ids sort by pk then time. */
export function answerId(pk: number, periodStart: number): string {
  return `${String(pk).padStart(10, '0')}:${String(periodStart).padStart(13, '0')}`;
}

export const DUPLICATE_KEY = 11000;
