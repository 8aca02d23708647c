import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Sample } from './store.js';

/** Keys of the running totals in Redis, under the cluster prefix. */
export const totalsKeys = (cluster: string) => ({
  influencer: (pk: number) => `${cluster}:inf:${pk}`,
  rank: `${cluster}:rank`,
  stats: `${cluster}:stats`,
  batch: (token: number) => `${cluster}:batch:${token}`,
});

export interface InfluencerTotals {
  samples: number;
  followerSum: number;
  followerMin: number;
  followerMax: number;
  /** epoch ms of the latest interval */
  latestAt: number;
  followerCount: number;
  followingCount: number;
  username: string;
}

function loadScript(name: string): string {
  // lib/lua next to this file when run from source, ../../lib/lua when run from dist/lib
  for (const rel of [`./lua/${name}`, `../../lib/lua/${name}`]) {
    try { return readFileSync(new URL(rel, import.meta.url), 'utf8'); } catch { /* next */ }
  }
  throw new Error(`Lua script ${name} not found`);
}

const APPLY_SAMPLES = loadScript('apply-samples.lua');
const BATCH_MARKER_TTL_S = 86_400;

type WithApply = Redis & { applySamples(numKeys: number, ...args: (string | number)[]): Promise<number | string[]> };

/**
 * Per-influencer running totals (samples, followerSum, min, max, latest counts), the rank index
 * (sorted set of latest followerCount) and the all-influencer total, kept in Redis and updated by
 * one Lua script per batch: O(1) per sample, exact, and a replayed batch changes nothing.
 */
export class Totals {
  private readonly keys: ReturnType<typeof totalsKeys>;

  constructor(private readonly redis: Redis, cluster: string) {
    this.keys = totalsKeys(cluster);
    if (!('applySamples' in redis)) redis.defineCommand('applySamples', { lua: APPLY_SAMPLES });
  }

  /** Applies samples that were just stored; resolves to the pks seen for the first time, or null if this batch was applied before. */
  async apply(samples: Sample[], token: number): Promise<number[] | null> {
    if (samples.length === 0) return [];
    const keys = [this.keys.batch(token), this.keys.rank, this.keys.stats, ...samples.map((s) => this.keys.influencer(s.pk))];
    const args: (string | number)[] = [BATCH_MARKER_TTL_S];
    for (const s of samples) args.push(s.pk, s.at, s.followerCount, s.followingCount, s.username);
    const result = await (this.redis as unknown as WithApply).applySamples(keys.length, ...keys, ...args);
    return result === -1 ? null : (result as string[]).map(Number);
  }

  async read(pk: number): Promise<InfluencerTotals | null> {
    const h = await this.redis.hgetall(this.keys.influencer(pk));
    if (!h.n) return null;
    return {
      samples: Number(h.n),
      followerSum: Number(h.s),
      followerMin: Number(h.mn),
      followerMax: Number(h.mx),
      latestAt: Number(h.at),
      followerCount: Number(h.f),
      followingCount: Number(h.g),
      username: h.u ?? '',
    };
  }

  /** Rank by latest followerCount: number of strictly higher counts + 1 (ties share a rank). */
  async rank(pk: number): Promise<number | null> {
    const score = await this.redis.zscore(this.keys.rank, String(pk));
    if (score === null) return null;
    return (await this.redis.zcount(this.keys.rank, `(${score}`, '+inf')) + 1;
  }

  /** Tracked influencers and the average of their latest follower counts. */
  async summary(): Promise<{ influencers: number; averageFollowers: number | null }> {
    const [count, total] = await Promise.all([this.redis.zcard(this.keys.rank), this.redis.hget(this.keys.stats, 'total')]);
    return { influencers: count, averageFollowers: count > 0 ? Math.round((Number(total ?? 0) / count) * 100) / 100 : null };
  }
}
