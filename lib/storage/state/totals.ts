// The running totals in Redis, per layout slice: per-influencer figures written by the apply script
// and read by the read API; rank, top lists and the all-influencer average come from the slices'
// ranking snapshots (ranking.ts). Whether a slice's totals can be trusted is totals-state.ts's question.
import { applySlice } from '../../lua/scripts.js';
import type { RedisClient } from '../../shared/redis.js';
import { clusterKeys, PERIOD_KEYS_TTL_MS, sliceKeys, type SliceKeys } from '../../shared/keys.js';
import { decodeLog, MAX_APPLY_SAMPLES, PACKED_TOTALS_BYTES, packSamples, unpackTotals } from '../format/codec.js';
import { Rankings, type TopEntry, type TopOrder } from './ranking.js';

export type { TopEntry, TopOrder };

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

/** How a slice's part of a log document is applied (apply.lua's header). */
export type ApplyMode = 'live' | 'reconcile' | 'refill';

/** What applying one slice's part of a log document did. */
export type ApplyOutcome =
  /** stored: new points; repeats: (pk, interval) stored before; older: left to the rebuild (before its cutoff) */
  | { kind: 'applied'; stored: number; repeats: number; older: number; fresh: number[] }
  /** the period's close had begun: the samples stay in the log only */
  | { kind: 'late' }
  /** the slice's totals are missing until a rebuild sets their cutoff: the rebuild counts them */
  | { kind: 'rebuild' }
  /** a reconcile while the slice is rebuilt: the rebuild's refill applies the document */
  | { kind: 'rebuilding' };

/** A sample as the totals see it; `username` only when the writer sends it (new or changed). */
export interface TotalsSample {
  pk: number;
  at: number;
  followerCount: number;
  followingCount: number;
  username?: string;
}

/** A log document's samples as the apply step takes them (a reconcile, a rebuild's refill). */
export function logSamples(period: number, payload: Uint8Array): TotalsSample[] {
  return decodeLog(period, payload).map((s) => ({
    pk: s.pk,
    at: s.at,
    followerCount: s.f,
    followingCount: s.g,
    username: s.username,
  }));
}

/**
 * Per-influencer running totals (samples, followerSum, min, max, latest and previous counts) and the
 * open buffers, kept in Redis per layout slice and updated by one Lua call per slice and log
 * document: O(1) per sample, exact, and a replayed document changes nothing.
 */
export class Totals {
  private readonly rankings: Rankings;

  constructor(
    private readonly redis: RedisClient,
    private readonly cluster: string,
    readonly slices: number,
    /** how long the ranking snapshots a reader holds serve before it asks for newer ones */
    rankingsRecheckMs?: number,
    /** while the previous version's key layout is in force, nothing is applied here (current if not given) */
    private readonly keyspace?: { current: boolean },
  ) {
    this.rankings = new Rankings(redis, cluster, slices, rankingsRecheckMs);
  }

  /** The keys of the slice holding `pk`. */
  keysOf(pk: number): SliceKeys {
    return sliceKeys(this.cluster, this.slices, pk % this.slices);
  }

  /** The samples grouped by slice, in their order. */
  bySlice<T extends { pk: number }>(samples: readonly T[]): Map<number, T[]> {
    const out = new Map<number, T[]>();
    for (const s of samples) {
      const slice = s.pk % this.slices;
      let list = out.get(slice);
      if (!list) out.set(slice, (list = []));
      list.push(s);
    }
    return out;
  }

  /**
   * Applies one slice's part of a log document (samples of period `period`, already durable in
   * MongoDB) to the totals and the open buffers, once per token: 'live' from the node that wrote it,
   * 'reconcile' from the period's close.
   */
  async applySlice(
    period: number,
    slice: number,
    samples: readonly TotalsSample[],
    mode: ApplyMode,
  ): Promise<ApplyOutcome> {
    if (samples.length === 0) return { kind: 'applied', stored: 0, repeats: 0, older: 0, fresh: [] };
    // the previous version's period close applies the document; after the switch, the rebuild counts it
    if (this.keyspace && !this.keyspace.current) return { kind: 'rebuild' };
    if (samples.length > MAX_APPLY_SAMPLES) return this.applyInParts(period, slice, samples, mode);
    const k = sliceKeys(this.cluster, this.slices, slice);
    const keys = [k.marks, k.totals, k.usernames, k.openPks(period)];
    const names: (string | number)[] = [];
    samples.forEach((s, i) => {
      keys.push(k.open(period, s.pk));
      if (s.username) names.push(i + 1, s.username);
    });
    const packed = packSamples(
      period,
      samples.map((s) => ({ pk: s.pk, at: s.at, f: s.followerCount, g: s.followingCount })),
    );
    const result = await applySlice(this.redis, keys, [period, mode, packed, PERIOD_KEYS_TTL_MS, ...names]);
    if (result === -2) return { kind: 'rebuild' };
    if (result === -3) return { kind: 'late' };
    if (result === -4) return { kind: 'rebuilding' };
    const [stored, repeats, older, ...fresh] = (result as Array<string | number>).map(Number);
    return { kind: 'applied', stored: stored!, repeats: repeats!, older: older!, fresh };
  }

  /** A part too large for one call, applied call after call: each is safe to repeat, so a failure half-way is too. */
  private async applyInParts(
    period: number,
    slice: number,
    samples: readonly TotalsSample[],
    mode: ApplyMode,
  ): Promise<ApplyOutcome> {
    const sum = { kind: 'applied' as const, stored: 0, repeats: 0, older: 0, fresh: [] as number[] };
    for (let i = 0; i < samples.length; i += MAX_APPLY_SAMPLES) {
      const o = await this.applySlice(period, slice, samples.slice(i, i + MAX_APPLY_SAMPLES), mode);
      if (o.kind !== 'applied') return o;
      sum.stored += o.stored;
      sum.repeats += o.repeats;
      sum.older += o.older;
      for (const pk of o.fresh) sum.fresh.push(pk);
    }
    return sum;
  }

  /**
   * Records that every slice of a log document has been applied, so its period's reconcile skips
   * it (applying it again would change nothing, but costs Redis a look at every sample).
   */
  async markApplied(period: number, token: string): Promise<void> {
    const key = clusterKeys(this.cluster).applied(period);
    // it expires two periods after its close; the bound is for a period whose close never comes
    await this.redis.multi().sadd(key, token).pexpire(key, PERIOD_KEYS_TTL_MS).exec();
  }

  /** The tokens of the period's log documents applied to every slice. */
  async appliedTokens(period: number): Promise<Set<string>> {
    return new Set(await this.redis.smembers(clusterKeys(this.cluster).applied(period)));
  }

  async read(pk: number): Promise<InfluencerTotals | null> {
    const k = this.keysOf(pk);
    const field = String(pk);
    const replies =
      (await this.redis
        .pipeline()
        .hgetBuffer(k.totals, field)
        .hget(k.usernames, field)
        .hget(k.suspicious, field)
        .exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    const [packed, username, flag] = replies.map((r) => r[1]) as [Buffer | null, string | null, string | null];
    // a value of another length is garbage (or another version's): no data, as the apply step sees it
    if (!packed || packed.length !== PACKED_TOTALS_BYTES) return null;
    const t = unpackTotals(pk, packed);
    const answer = parseAnswer(flag);
    return {
      samples: t.n,
      followerSum: t.sum,
      followerMin: t.min,
      followerMax: t.max,
      latestAt: t.at,
      followerCount: t.f,
      followingCount: t.g,
      username: username ?? '',
      previousFollowerCount: t.pat < 0 ? null : t.pf,
      previousAt: t.pat < 0 ? null : t.pat,
      suspicious: answer?.suspicious ?? null,
      suspiciousAt: answer?.at ?? null,
    };
  }

  /**
   * Stores the daily is_suspicious answer next to the totals (its durable copy is in MongoDB), so a
   * page view reads the pk's slice and no MongoDB document.
   */
  async setSuspicious(pk: number, suspicious: boolean, at: number): Promise<void> {
    await this.redis.hset(this.keysOf(pk).suspicious, String(pk), formatAnswer(suspicious, at));
  }

  /**
   * Per pk, whether its point of interval `at` is stored: its latest interval is `at`, or the one the
   * latest replaced is. One HMGET per slice (its pks' packed totals).
   */
  async stored(pks: readonly number[], at: number): Promise<boolean[]> {
    const found = new Map<number, boolean>();
    await Promise.all(
      [...this.bySlice(pks.map((pk) => ({ pk })))].map(async ([slice, list]) => {
        const k = sliceKeys(this.cluster, this.slices, slice);
        const values = await this.redis.hmgetBuffer(k.totals, ...list.map(({ pk }) => String(pk)));
        list.forEach(({ pk }, i) => {
          const packed = values[i];
          const t = packed && packed.length === PACKED_TOTALS_BYTES ? unpackTotals(pk, packed) : null;
          found.set(pk, t !== null && (t.at === at || t.pat === at));
        });
      }),
    );
    return pks.map((pk) => found.get(pk) ?? false);
  }

  /** Whether the pk has at least one sample. */
  async exists(pk: number): Promise<boolean> {
    return (await this.redis.hexists(this.keysOf(pk).totals, String(pk))) === 1;
  }

  /** The first `limit` pks by descending followerCount or growth, as of the slices' ranking snapshots. */
  top(order: TopOrder, limit: number): Promise<TopEntry[]> {
    return this.rankings.top(order, limit);
  }

  /** Rank by latest followerCount as of the ranking snapshots: number of strictly higher counts + 1 (ties share a rank). */
  rank(pk: number): Promise<number | null> {
    return this.rankings.rank(pk);
  }

  /** The ranking snapshots are read again at the next question (after a snapshot was taken by hand). */
  reloadRankings(): void {
    this.rankings.reload();
  }

  /** Tracked influencers and the average of their latest follower counts, as of the ranking snapshots. */
  summary(): Promise<{ influencers: number; averageFollowers: number | null; rankedAt: number | null }> {
    return this.rankings.summary();
  }
}

/** The stored form of a daily answer: '<1|0>:<epoch ms>'. */
export function formatAnswer(suspicious: boolean, at: number): string {
  return `${suspicious ? 1 : 0}:${at}`;
}

function parseAnswer(raw: string | null): { suspicious: boolean; at: number } | null {
  const m = raw === null ? null : /^([01]):(\d+)$/.exec(raw);
  return m ? { suspicious: m[1] === '1', at: Number(m[2]) } : null;
}
