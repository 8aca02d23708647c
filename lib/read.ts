import type { Db } from 'mongodb';
import { collections, SLOTS_PER_BUCKET } from './store.js';

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
  suspicious: boolean | null;
  range: { from: string; to: string };
  points: TimelinePoint[];
}

/** followerCount / followingCount, derived on read; null when nobody is followed. */
export function ratio(followers: number, following: number): number | null {
  return following > 0 ? Math.round((followers / following) * 10000) / 10000 : null;
}

/**
 * One influencer with its timeline in [from, to): two index lookups (the influencer by _id, its
 * buckets by {pk, t}). Null when the pk has no data.
 */
export async function readInfluencer(db: Db, pk: number, from: number, to: number): Promise<InfluencerView | null> {
  const { influencers, timeline } = collections(db);
  const doc = await influencers.findOne({ _id: pk });
  if (!doc || !doc.latest) return null;
  // a bucket starts up to 60 intervals before `from`; the widest interval in use bounds it
  const widest = 60 * 60_000 * SLOTS_PER_BUCKET;
  const buckets = await timeline.find({ pk, t: { $gte: new Date(from - widest), $lt: new Date(to) } }).sort({ t: 1 }).toArray();
  const points: TimelinePoint[] = [];
  for (const b of buckets) {
    const start = b.t.getTime();
    for (const [slot, followers] of Object.entries(b.f ?? {})) {
      const at = start + Number(slot) * b.iv;
      if (at < from || at >= to) continue;
      const following = b.g?.[slot] ?? 0;
      points.push({ at: new Date(at).toISOString(), followerCount: followers, followingCount: following, followerRatio: ratio(followers, following) });
    }
  }
  points.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  const latest = doc.latest;
  return {
    pk,
    username: doc.username,
    followerCount: latest.followerCount,
    followingCount: latest.followingCount,
    followerRatio: ratio(latest.followerCount, latest.followingCount),
    averageFollowers: doc.samples > 0 ? Math.round((doc.followerSum / doc.samples) * 100) / 100 : 0,
    minFollowers: doc.followerMin,
    maxFollowers: doc.followerMax,
    samples: doc.samples,
    lastUpdated: latest.at.toISOString(),
    suspicious: doc.suspicious ?? null,
    range: { from: new Date(from).toISOString(), to: new Date(to).toISOString() },
    points,
  };
}
