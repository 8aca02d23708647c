import type { BucketSummary, Point } from '../storage/format/codec.js';
import type { TimelineReader } from '../storage/read/reader.js';
import type { Totals } from '../storage/state/totals.js';

/** Above this range a timeline is answered in one point per bucket instead of one per interval. */
export const INTERVAL_RESOLUTION_MAX_MS = 86_400_000;
/** Most points of a timeline answered one per interval (about 1 MB of JSON): more intervals are answered per bucket. */
export const MAX_POINTS = 10_000;

/**
 * One point of a timeline, the same shape at every resolution: the last counts of its step (an
 * interval, or a bucket of them) and their ratio, with min, max and mean followerCount over the step
 * and the samples in it (one interval: one sample, min = max = mean = followerCount).
 */
export interface TimelinePoint {
  at: string;
  followerCount: number;
  followingCount: number;
  followerRatio: number | null;
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

/** A pk's timeline over a range: one point per interval up to a day, one per bucket beyond. */
export interface Timeline {
  range: { from: string; to: string };
  resolution: 'interval' | 'bucket';
  points: TimelinePoint[];
}

export interface InfluencerView extends InfluencerSummary, Timeline {}

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

/** One point is a bucket of one sample. */
export function intervalPoint(p: Point): TimelinePoint {
  return bucketPoint({ at: p.at, s: { n: 1, sum: p.f, min: p.f, max: p.f, lastF: p.f, lastG: p.g } });
}

export function bucketPoint(b: { at: number; s: BucketSummary }): TimelinePoint {
  const { s } = b;
  return {
    at: new Date(b.at).toISOString(),
    followerCount: s.lastF,
    followingCount: s.lastG,
    followerRatio: ratio(s.lastF, s.lastG),
    minFollowers: s.min,
    maxFollowers: s.max,
    meanFollowers: Math.round((s.sum / s.n) * 100) / 100,
    samples: s.n,
  };
}

/**
 * One pk's timeline in [from, to): a find by exact `_id` per bucket or rollup, never a scan. One
 * point per interval up to a day and MAX_POINTS points (a day at INTERVAL_MS=60000 is 1,440),
 * else one per bucket, so an answer stays bounded whatever the interval.
 */
export async function readTimeline(reader: TimelineReader, pk: number, from: number, to: number): Promise<Timeline> {
  const range = { from: new Date(from).toISOString(), to: new Date(to).toISOString() };
  if (to - from > INTERVAL_RESOLUTION_MAX_MS || (to - from) / reader.layout.intervalMs > MAX_POINTS) {
    return { range, resolution: 'bucket', points: (await reader.buckets(pk, from, to)).map(bucketPoint) };
  }
  return { range, resolution: 'interval', points: (await reader.points(pk, from, to)).map(intervalPoint) };
}

/** One influencer with its timeline in [from, to); null when the pk has no data. */
export async function readInfluencer(
  reader: TimelineReader,
  totals: Totals,
  pk: number,
  from: number,
  to: number,
): Promise<InfluencerView | null> {
  const [summary, timeline] = await Promise.all([readSummary(totals, pk), readTimeline(reader, pk, from, to)]);
  if (!summary) return null;
  return { ...summary, ...timeline };
}
