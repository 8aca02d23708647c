import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Sample } from './store.js';

/** The running totals are missing (Redis lost them) and no rebuild has set their cutoff yet. */
export class TotalsNotReady extends Error {
  constructor() { super('running totals are missing in Redis until a rebuild starts; the batch waits'); }
}

/** Keys of the running totals in Redis, under the cluster prefix. */
export const totalsKeys = (cluster: string) => ({
  influencer: (pk: number) => `${cluster}:inf:${pk}`,
  rank: `${cluster}:rank`,
  growth: `${cluster}:growth`,
  stats: `${cluster}:stats`,
  batch: (token: number) => `${cluster}:batch:${token}`,
  /** the running totals count every sample with `at` >= this; older ones come from a rebuild */
  since: `${cluster}:totals:since`,
  /** a rebuild in progress: T (its cutoff) and last (the last pk merged) */
  rebuild: `${cluster}:totals:rebuild`,
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
  /** followerCount and interval ms of the sample "latest" replaced; null before a second sample */
  previousFollowerCount: number | null;
  previousAt: number | null;
  /** the daily is_suspicious answer and when it was stored (epoch ms); null until checked */
  suspicious: boolean | null;
  suspiciousAt: number | null;
}

/** The two top lists: by latest followerCount, or by growth (latest minus previous followerCount). */
export type TopOrder = 'followers' | 'growth';

export interface TopEntry {
  pk: number;
  /** the sorted-set score: followerCount, or growth */
  score: number;
  username: string;
  followerCount: number | null;
  followingCount: number | null;
  growth: number | null;
}

/** Reads a Lua script of lib/lua. */
export function loadScript(name: string): string {
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
 * (sorted set of latest followerCount), the growth index (sorted set of latest minus previous
 * followerCount) and the all-influencer total, kept in Redis and updated by one Lua script per
 * batch: O(1) per sample, exact, and a replayed batch changes nothing.
 */
export class Totals {
  private readonly keys: ReturnType<typeof totalsKeys>;

  constructor(private readonly redis: Redis, cluster: string) {
    this.keys = totalsKeys(cluster);
    if (!('applySamples' in redis)) redis.defineCommand('applySamples', { lua: APPLY_SAMPLES });
  }

  /**
   * Applies samples that were just stored; resolves to the pks that had no totals yet, or null if
   * this batch was applied before. Throws TotalsNotReady while the totals wait for a rebuild.
   */
  async apply(samples: Sample[], token: number): Promise<number[] | null> {
    if (samples.length === 0) return [];
    const keys = [this.keys.batch(token), this.keys.rank, this.keys.stats, this.keys.growth, this.keys.since, ...samples.map((s) => this.keys.influencer(s.pk))];
    const args: (string | number)[] = [BATCH_MARKER_TTL_S];
    for (const s of samples) args.push(s.pk, s.at, s.followerCount, s.followingCount, s.username);
    const result = await (this.redis as unknown as WithApply).applySamples(keys.length, ...keys, ...args);
    if (result === -2) throw new TotalsNotReady();
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
      previousFollowerCount: h.pf === undefined ? null : Number(h.pf),
      previousAt: h.pat === undefined ? null : Number(h.pat),
      suspicious: h.sus === undefined ? null : h.sus === '1',
      suspiciousAt: h.sat === undefined ? null : Number(h.sat),
    };
  }

  /**
   * Stores the daily is_suspicious answer next to the totals (its durable copy is on the influencer
   * document), so a page view reads one hash and no MongoDB document.
   */
  async setSuspicious(pk: number, suspicious: boolean, at: number): Promise<void> {
    await this.redis.hset(this.keys.influencer(pk), 'sus', suspicious ? '1' : '0', 'sat', String(at));
  }

  /** Whether the pk has at least one sample. */
  async exists(pk: number): Promise<boolean> {
    return (await this.redis.hexists(this.keys.influencer(pk), 'n')) === 1;
  }

  /** The first `limit` pks by descending score, with their latest counts: one ZREVRANGE and one pipelined HMGET per pk. */
  async top(order: TopOrder, limit: number): Promise<TopEntry[]> {
    const flat = await this.redis.zrevrange(order === 'growth' ? this.keys.growth : this.keys.rank, 0, limit - 1, 'WITHSCORES');
    const pks: number[] = [];
    const scores: number[] = [];
    for (let i = 0; i < flat.length; i += 2) { pks.push(Number(flat[i])); scores.push(Number(flat[i + 1])); }
    if (pks.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const pk of pks) pipeline.hmget(this.keys.influencer(pk), 'u', 'f', 'g', 'pf');
    const rows = (await pipeline.exec()) ?? [];
    return pks.map((pk, i) => {
      const [err, values] = rows[i] ?? [null, []];
      const [u, f, g, pf] = (err ? [] : values) as (string | null)[];
      const num = (v: string | null | undefined): number | null => (v === null || v === undefined ? null : Number(v));
      const followerCount = num(f);
      const previous = num(pf);
      return {
        pk,
        score: scores[i],
        username: u ?? '',
        followerCount,
        followingCount: num(g),
        growth: followerCount !== null && previous !== null ? followerCount - previous : null,
      };
    });
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
