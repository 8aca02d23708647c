import type { Db } from 'mongodb';
import { collections, pointId } from './store.js';
import type { Totals } from './totals.js';

export interface TimelinePoint {
  at: string;
  followerCount: number;
  followingCount: number;
  followerRatio: number | null;
}

export interface InfluencerView {
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
  suspicious: boolean | null;
  range: { from: string; to: string };
  points: TimelinePoint[];
}

/** followerCount / followingCount, derived on read; null when nobody is followed. */
export function ratio(followers: number, following: number): number | null {
  return following > 0 ? Math.round((followers / following) * 10000) / 10000 : null;
}

/**
 * One influencer with its timeline in [from, to): its running totals and rank from Redis (a hash
 * and a sorted-set count), its points from one _id range of the timeline, its flags by _id.
 * Null when the pk has no data.
 */
export async function readInfluencer(db: Db, totals: Totals, pk: number, from: number, to: number): Promise<InfluencerView | null> {
  const { influencers, timeline } = collections(db);
  const [t, rank, doc, docs] = await Promise.all([
    totals.read(pk),
    totals.rank(pk),
    influencers.findOne({ _id: pk }),
    timeline.find({ _id: { $gte: pointId(pk, Math.max(0, from)), $lt: pointId(pk, to) } }).sort({ _id: 1 }).toArray(),
  ]);
  if (!t) return null;
  const points = docs.map((p) => ({ at: p.t.toISOString(), followerCount: p.f, followingCount: p.g, followerRatio: ratio(p.f, p.g) }));
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
    suspicious: doc?.suspicious ?? null,
    range: { from: new Date(from).toISOString(), to: new Date(to).toISOString() },
    points,
  };
}
