// The running totals in Redis: per-influencer figures, rank and growth, written by the apply script
// and read by the read API. Whether they can be trusted right now is totals-state.ts's question.
import type { Redis } from 'ioredis';
import { applyLog } from '../../lua/scripts.js';
import { clusterKeys, INFLUENCER_FIELDS } from '../../shared/keys.js';

/** The running totals are missing (Redis lost them) and no rebuild has set their cutoff yet. */
export class TotalsNotReady extends Error {
  constructor() {
    super('running totals are missing in Redis until a rebuild starts; the batch waits');
  }
}

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

/** an applied set is deleted when its period closes; this only bounds what a stopped cluster leaves */
const APPLIED_SET_TTL_S = 7 * 86_400;

/** What applying one log document did. */
export type ApplyOutcome =
  | { kind: 'applied'; repeats: number; fresh: number[] }
  /** applied before (a retry, or the period's reconcile got there first) */
  | { kind: 'replayed' }
  /** the period's close had begun: the samples stay in the log only */
  | { kind: 'late' };

/** A sample as the totals see it. */
export interface TotalsSample {
  pk: number;
  at: number;
  followerCount: number;
  followingCount: number;
  username?: string;
}

/**
 * Per-influencer running totals (samples, followerSum, min, max, latest counts), the rank index
 * (sorted set of latest followerCount), the growth index (sorted set of latest minus previous
 * followerCount) and the all-influencer total, kept in Redis and updated by one Lua script per
 * batch: O(1) per sample, exact, and a replayed batch changes nothing.
 */
export class Totals {
  private readonly keys: ReturnType<typeof clusterKeys>;

  constructor(
    private readonly redis: Redis,
    cluster: string,
  ) {
    this.keys = clusterKeys(cluster);
  }

  /**
   * Applies one log document (samples of period `period`, already durable in MongoDB) to the
   * totals and the open buffers, once per token: 'live' from the node that wrote it, 'reconcile'
   * from the period's close. Throws TotalsNotReady while the totals wait for a rebuild.
   */
  async applyLog(
    token: string,
    period: number,
    samples: TotalsSample[],
    mode: 'live' | 'reconcile',
    slice: (pk: number) => number,
  ): Promise<ApplyOutcome> {
    if (samples.length === 0) return { kind: 'applied', repeats: 0, fresh: [] };
    const k = this.keys;
    const keys = [k.applied(period), k.rank, k.stats, k.growth, k.since, k.closing, k.rebuilt(period)];
    const args: (string | number)[] = [token, period, mode, APPLIED_SET_TTL_S];
    for (const s of samples) {
      keys.push(this.keys.influencer(s.pk), this.keys.open(period, s.pk), this.keys.openPks(period, slice(s.pk)));
      args.push(s.pk, s.at, s.followerCount, s.followingCount, s.username ?? '');
    }
    const result = await applyLog(this.redis, keys, args);
    if (result === -2) throw new TotalsNotReady();
    if (result === -3) return { kind: 'late' };
    if (result === -1) return { kind: 'replayed' };
    const [repeats, ...fresh] = result as Array<string | number>;
    return { kind: 'applied', repeats: Number(repeats), fresh: fresh.map(Number) };
  }

  async read(pk: number): Promise<InfluencerTotals | null> {
    const h = await this.redis.hgetall(this.keys.influencer(pk));
    const F = INFLUENCER_FIELDS;
    if (!h[F.samples]) return null;
    const optional = (v: string | undefined): number | null => (v === undefined ? null : Number(v));
    return {
      samples: Number(h[F.samples]),
      followerSum: Number(h[F.followerSum]),
      followerMin: Number(h[F.followerMin]),
      followerMax: Number(h[F.followerMax]),
      latestAt: Number(h[F.latestAt]),
      followerCount: Number(h[F.followerCount]),
      followingCount: Number(h[F.followingCount]),
      username: h[F.username] ?? '',
      previousFollowerCount: optional(h[F.previousFollowerCount]),
      previousAt: optional(h[F.previousAt]),
      suspicious: h[F.suspicious] === undefined ? null : h[F.suspicious] === '1',
      suspiciousAt: optional(h[F.suspiciousAt]),
    };
  }

  /**
   * Stores the daily is_suspicious answer next to the totals (its durable copy is on the influencer
   * document), so a page view reads one hash and no MongoDB document.
   */
  async setSuspicious(pk: number, suspicious: boolean, at: number): Promise<void> {
    const fields = [INFLUENCER_FIELDS.suspicious, suspicious ? '1' : '0', INFLUENCER_FIELDS.suspiciousAt, String(at)];
    await this.redis.hset(this.keys.influencer(pk), ...fields);
  }

  /** Whether the pk has at least one sample. */
  async exists(pk: number): Promise<boolean> {
    return (await this.redis.hexists(this.keys.influencer(pk), INFLUENCER_FIELDS.samples)) === 1;
  }

  /** The first `limit` pks by descending score, with their latest counts: one ZREVRANGE and one pipelined HMGET per pk. */
  async top(order: TopOrder, limit: number): Promise<TopEntry[]> {
    const flat = await this.redis.zrevrange(
      order === 'growth' ? this.keys.growth : this.keys.rank,
      0,
      limit - 1,
      'WITHSCORES',
    );
    const pks: number[] = [];
    const scores: number[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      pks.push(Number(flat[i]));
      scores.push(Number(flat[i + 1]));
    }
    if (pks.length === 0) return [];
    const pipeline = this.redis.pipeline();
    const F = INFLUENCER_FIELDS;
    for (const pk of pks)
      pipeline.hmget(this.keys.influencer(pk), F.username, F.followerCount, F.followingCount, F.previousFollowerCount);
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
    const [count, total] = await Promise.all([
      this.redis.zcard(this.keys.rank),
      this.redis.hget(this.keys.stats, 'total'),
    ]);
    return {
      influencers: count,
      averageFollowers: count > 0 ? Math.round((Number(total ?? 0) / count) * 100) / 100 : null,
    };
  }
}
