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
 * One daily is_suspicious answer: one document per (pk, check period), `_id` `<pk, 10 digits>:<period ms, 13 digits>`, so storing it is an insert and a second answer in the same period a duplicate key.
 */
export interface SuspiciousDoc {
  _id: string;
  pk: number;
  /** when the answer was stored */
  at: Date;
  suspicious: boolean;
}

export function collections(db: Db): { influencers: Collection<InfluencerDoc>; suspicious: Collection<SuspiciousDoc> } {
  return { influencers: db.collection<InfluencerDoc>('influencers'), suspicious: db.collection<SuspiciousDoc>('suspicious') };
}

/** A daily answer's `_id`: the pk and the start of its check period, zero-padded so ids sort by pk then time. */
export function answerId(pk: number, periodStart: number): string {
  return `${String(pk).padStart(10, '0')}:${String(periodStart).padStart(13, '0')}`;
}

export const DUPLICATE_KEY = 11000;
