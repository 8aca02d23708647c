import type { Db } from 'mongodb';
import { collections, pointId } from './store.js';
import type { Totals } from './totals.js';

export interface TimelinePoint {
  at: string;
  followerCount: number;
  followingCount: number;
  followerRatio: number | null;
}

/** One UTC hour of points: the last counts (and their ratio) plus min, max and mean of followerCount. */
export interface HourlyPoint extends TimelinePoint {
  minFollowers: number;
  maxFollowers: number;
  meanFollowers: number;
  samples: number;
}

/** The latest figures of one influencer, without its timeline: what a page header shows. */
export interface InfluencerSummary {
  pk: number;
  username: string;
  followerCount: number;
  followingCount: number;
  followerRatio: number | null;
  averageFollowers: number;
  minFollowers: number;
  maxFollowers: number;
  samples: number;
  lastUpdated: string;
  rank: number | null;
  /** latest followerCount minus the one before it; null until a second sample */
  growth: number | null;
  /** when the sample before the latest was taken */
  previousAt: string | null;
  suspicious: boolean | null;
  suspiciousAt: string | null;
}

export interface InfluencerView extends InfluencerSummary {
  range: { from: string; to: string };
  points: TimelinePoint[];
}

/** followerCount / followingCount, derived on read; null when nobody is followed. */
export function ratio(followers: number, following: number): number | null {
  return following > 0 ? Math.round((followers / following) * 10000) / 10000 : null;
}

/**
 * One influencer's latest figures: its running totals and suspicious flag (one Redis hash) and its
 * rank (a sorted-set count). No MongoDB read: on FerretDB 1.24 (SQLite) even a lookup by _id scans
 * the collection. Null when the pk has no data.
 */
export async function readSummary(totals: Totals, pk: number): Promise<InfluencerSummary | null> {
  const [t, rank] = await Promise.all([totals.read(pk), totals.rank(pk)]);
  if (!t) return null;
  return {
    pk,
    username: t.username,
    followerCount: t.followerCount,
    followingCount: t.followingCount,
    followerRatio: ratio(t.followerCount, t.followingCount),
    averageFollowers: Math.round((t.followerSum / t.samples) * 100) / 100,
    minFollowers: t.followerMin,
    maxFollowers: t.followerMax,
    samples: t.samples,
    lastUpdated: new Date(t.latestAt).toISOString(),
    rank,
    growth: t.previousFollowerCount === null ? null : t.followerCount - t.previousFollowerCount,
    previousAt: t.previousAt === null ? null : new Date(t.previousAt).toISOString(),
    suspicious: t.suspicious,
    suspiciousAt: t.suspiciousAt === null ? null : new Date(t.suspiciousAt).toISOString(),
  };
}

/** The points of one pk in [from, to): one _id range of the timeline (an index range on MongoDB). */
export async function readPoints(db: Db, pk: number, from: number, to: number): Promise<TimelinePoint[]> {
  if (to <= from) return [];
  const docs = await collections(db).timeline
    .find({ _id: { $gte: pointId(pk, Math.max(0, from)), $lt: pointId(pk, to) } }, { projection: { t: 1, f: 1, g: 1 } })
    .sort({ _id: 1 })
    .toArray();
  return docs.map((p) => ({ at: p.t.toISOString(), followerCount: p.f, followingCount: p.g, followerRatio: ratio(p.f, p.g) }));
}

const HOUR = 3_600_000;

/** Aggregates time-ordered points into UTC hours; each hour's counts and ratio are those of its last point. */
export function hourly(points: TimelinePoint[]): HourlyPoint[] {
  const out: HourlyPoint[] = [];
  let hour = NaN;
  let sum = 0;
  for (const p of points) {
    const h = Math.floor(Date.parse(p.at) / HOUR) * HOUR;
    let cur = out[out.length - 1];
    if (h !== hour) {
      if (cur) cur.meanFollowers = Math.round((sum / cur.samples) * 100) / 100;
      hour = h;
      sum = 0;
      cur = { ...p, at: new Date(h).toISOString(), minFollowers: p.followerCount, maxFollowers: p.followerCount, meanFollowers: 0, samples: 0 };
      out.push(cur);
    }
    cur.followerCount = p.followerCount;
    cur.followingCount = p.followingCount;
    cur.followerRatio = p.followerRatio;
    cur.minFollowers = Math.min(cur.minFollowers, p.followerCount);
    cur.maxFollowers = Math.max(cur.maxFollowers, p.followerCount);
    cur.samples++;
    sum += p.followerCount;
  }
  const last = out[out.length - 1];
  if (last) last.meanFollowers = Math.round((sum / last.samples) * 100) / 100;
  return out;
}

/** One influencer with its timeline in [from, to); null when the pk has no data. */
export async function readInfluencer(db: Db, totals: Totals, pk: number, from: number, to: number): Promise<InfluencerView | null> {
  const [summary, points] = await Promise.all([readSummary(totals, pk), readPoints(db, pk, from, to)]);
  if (!summary) return null;
  return { ...summary, range: { from: new Date(from).toISOString(), to: new Date(to).toISOString() }, points };
}
