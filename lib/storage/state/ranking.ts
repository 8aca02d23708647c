// Rank, the two top lists, the number of tracked influencers and their average, at interval
// granularity (DESIGN.md one folder up, "Ranking at interval granularity"): once per interval one
// node per slice reads the slice's totals and writes a snapshot; readers merge the slices' snapshots.
import type { Logger } from '../../shared/log.js';
import { PeriodicJob } from '../../shared/services.js';
import type { RedisClient } from '../../shared/redis.js';
import { SLICE_MARKS, sliceKeys, type SliceKeys } from '../../shared/keys.js';
import { lowerBound, shuffled, upperBound } from '../../shared/util.js';
import { CorruptData } from '../format/bytes.js';
import { PACKED_TOTALS_BYTES, unpackTotals, type PkTotals } from '../format/codec.js';

/** The two top lists: by latest followerCount, or by growth (latest minus previous followerCount). */
export type TopOrder = 'followers' | 'growth';

export interface TopEntry {
  pk: number;
  /** what the list is sorted by: followerCount, or growth */
  score: number;
  username: string;
  followerCount: number | null;
  followingCount: number | null;
  growth: number | null;
}

/** Entries of each top list a slice keeps: the read API's largest limit. */
export const TOP_KEPT = 1000;
const VERSION = 1;
/** version, as-of, taken-at, count, total, two list lengths */
const HEADER_BYTES = 1 + 8 + 8 + 4 + 8 + 4 + 4;
/** pk, followerCount, followingCount, growth (NaN: one sample only) */
const TOP_ENTRY_BYTES = 24;
/** How long readers use the snapshots they hold before asking whether a slice has a newer one. */
export const RANKINGS_RECHECK_MS = 1000;

interface Ranked {
  pk: number;
  f: number;
  g: number;
  growth: number;
}

/** One slice's snapshot, decoded. */
export interface RankingSnapshot {
  /** the interval boundary it was taken for (epoch ms) */
  asOf: number;
  takenAt: number;
  count: number;
  /** sum of the latest followerCount of the slice's pks */
  total: number;
  followers: Ranked[];
  growth: Ranked[];
  /** the slice's pks, ascending, and their latest followerCount */
  pks: Float64Array;
  counts: Uint32Array;
  /** every latest followerCount of the slice, ascending */
  ascending: Uint32Array;
}

/** The best first: by score descending, ties by pk ascending. */
function byScore(score: (r: Ranked) => number): (a: Ranked, b: Ranked) => number {
  return (a, b) => score(b) - score(a) || a.pk - b.pk;
}
const byFollowers = byScore((r) => r.f);
const byGrowth = byScore((r) => r.growth);

/** A slice's snapshot of its totals at `takenAt`, for the interval boundary `asOf`. */
export function encodeRanking(totals: readonly PkTotals[], asOf: number, takenAt: number): Buffer {
  const ranked = totals.map((t) => ({ pk: t.pk, f: t.f, g: t.g, growth: t.pat < 0 ? NaN : t.f - t.pf }));
  const followers = [...ranked].sort(byFollowers).slice(0, TOP_KEPT);
  const growth = ranked
    .filter((r) => !Number.isNaN(r.growth))
    .sort(byGrowth)
    .slice(0, TOP_KEPT);
  const byPk = [...ranked].sort((a, b) => a.pk - b.pk);
  const n = ranked.length;
  const b = Buffer.alloc(HEADER_BYTES + (followers.length + growth.length) * TOP_ENTRY_BYTES + n * 16);
  let o = b.writeUInt8(VERSION, 0);
  o = b.writeDoubleBE(asOf, o);
  o = b.writeDoubleBE(takenAt, o);
  o = b.writeUInt32BE(n, o);
  o = b.writeDoubleBE(
    ranked.reduce((sum, r) => sum + r.f, 0),
    o,
  );
  o = b.writeUInt32BE(followers.length, o);
  o = b.writeUInt32BE(growth.length, o);
  for (const r of [...followers, ...growth]) {
    o = b.writeDoubleBE(r.pk, o);
    o = b.writeUInt32BE(r.f, o);
    o = b.writeUInt32BE(r.g, o);
    o = b.writeDoubleBE(r.growth, o);
  }
  for (const r of byPk) o = b.writeDoubleBE(r.pk, o);
  for (const r of byPk) o = b.writeUInt32BE(r.f, o);
  for (const f of Uint32Array.from(byPk, (r) => r.f).sort()) o = b.writeUInt32BE(f, o);
  return b;
}

/** The snapshot `encodeRanking` wrote; throws CorruptData on anything else. */
export function decodeRanking(b: Buffer): RankingSnapshot {
  if (b.length < HEADER_BYTES || b.readUInt8(0) !== VERSION) throw new CorruptData('ranking snapshot: bad header');
  const asOf = b.readDoubleBE(1);
  const takenAt = b.readDoubleBE(9);
  const count = b.readUInt32BE(17);
  const total = b.readDoubleBE(21);
  const nf = b.readUInt32BE(29);
  const ng = b.readUInt32BE(33);
  if (b.length !== HEADER_BYTES + (nf + ng) * TOP_ENTRY_BYTES + count * 16)
    throw new CorruptData(`ranking snapshot: ${b.length} bytes for ${count} pks`);
  let o = HEADER_BYTES;
  const entries = (k: number): Ranked[] =>
    Array.from({ length: k }, () => {
      const r = {
        pk: b.readDoubleBE(o),
        f: b.readUInt32BE(o + 8),
        g: b.readUInt32BE(o + 12),
        growth: b.readDoubleBE(o + 16),
      };
      o += TOP_ENTRY_BYTES;
      return r;
    });
  const followers = entries(nf);
  const growth = entries(ng);
  const pks = new Float64Array(count);
  const counts = new Uint32Array(count);
  const ascending = new Uint32Array(count);
  for (let i = 0; i < count; i++, o += 8) pks[i] = b.readDoubleBE(o);
  for (let i = 0; i < count; i++, o += 4) counts[i] = b.readUInt32BE(o);
  for (let i = 0; i < count; i++, o += 4) ascending[i] = b.readUInt32BE(o);
  return { asOf, takenAt, count, total, followers, growth, pks, counts, ascending };
}

/**
 * Takes one slice's snapshot now, for the interval boundary `asOf`: one read of the slice's totals
 * hash, one write. Skipped (false) while the slice's totals are not counting or are being rebuilt.
 */
export async function takeRanking(redis: RedisClient, k: SliceKeys, asOf: number, now: number): Promise<boolean> {
  const [since, rebuilding] = await redis.hmget(k.marks, SLICE_MARKS.since, SLICE_MARKS.rebuildCutoff);
  if (since === null || rebuilding !== null) return false;
  const hash = await redis.hgetallBuffer(k.totals);
  const totals: PkTotals[] = [];
  // a value of another length is garbage (or another version's): left out, as the apply step replaces it
  for (const [pk, packed] of Object.entries(hash))
    if (packed.length === PACKED_TOTALS_BYTES) totals.push(unpackTotals(Number(pk), packed));
  await redis.set(k.ranking, encodeRanking(totals, asOf, now));
  return true;
}

export interface RankingJobOptions {
  cluster: string;
  slices: number;
  intervalMs: number;
  /** nothing of this version's to rank while the previous version's key layout is in force */
  keyspace?: { current: boolean };
  /** how long after an interval's end its samples are stored (flush age and a margin) */
  lagMs: number;
  now?: () => number;
}

/**
 * Every node runs one: once per interval, after the interval's end plus the lag, it claims each
 * slice whose snapshot for that interval nobody has claimed and takes it. A node that dies with a
 * claim leaves that slice's snapshot one interval older; the next interval's is taken as usual.
 */
export class RankingJob {
  private readonly job: PeriodicJob<number>;
  private readonly now: () => number;
  private done = -Infinity;

  constructor(
    private readonly redis: RedisClient,
    private readonly opts: RankingJobOptions,
    log: Logger,
  ) {
    this.now = opts.now ?? Date.now;
    const everyMs = Math.min(1000, Math.max(50, opts.intervalMs / 4));
    const failure = 'taking a ranking snapshot failed; retrying';
    this.job = new PeriodicJob(() => this.runOnce(), { log, failure, everyMs });
  }

  start(): void {
    this.job.start();
  }

  async stop(): Promise<void> {
    await this.job.stop();
  }

  /** Takes the snapshots due and not claimed by another node; resolves to how many this node took. */
  async runOnce(): Promise<number> {
    const { intervalMs, lagMs, slices, cluster } = this.opts;
    const now = this.now();
    const asOf = Math.floor((now - lagMs) / intervalMs) * intervalMs;
    if (asOf <= this.done || (this.opts.keyspace && !this.opts.keyspace.current)) return 0;
    let taken = 0;
    for (const slice of shuffled(slices)) {
      const k = sliceKeys(cluster, slices, slice);
      const claimed = await this.redis.set(k.rankingClaim(asOf), '1', 'PX', 2 * intervalMs, 'NX');
      if (claimed === 'OK' && (await takeRanking(this.redis, k, asOf, this.now()))) taken++;
    }
    this.done = asOf;
    return taken;
  }
}

/**
 * The slices' snapshots as a reader holds them (about 20 bytes a tracked pk), reloaded per slice when
 * its snapshot changes: rank, top lists and the average cost no Redis work beyond that.
 */
export class Rankings {
  private readonly snapshots: (RankingSnapshot | null)[];
  private checkedAt = -Infinity;
  private checking?: Promise<void>;
  /** whether the snapshots held may answer while newer ones load: after a load, until `reload()` */
  private held = false;

  constructor(
    private readonly redis: RedisClient,
    private readonly cluster: string,
    private readonly slices: number,
    private readonly recheckMs = RANKINGS_RECHECK_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.snapshots = new Array(slices).fill(null);
  }

  /** Rank of the pk's followerCount in its snapshot among every slice's: 1 + the counts above it. */
  async rank(pk: number): Promise<number | null> {
    await this.fresh();
    const own = this.snapshots[pk % this.slices];
    if (!own) return null;
    const i = lowerBound(own.pks, pk);
    if (i >= own.count || own.pks[i] !== pk) return null;
    const f = own.counts[i]!;
    let above = 0;
    for (const s of this.snapshots) if (s) above += s.count - upperBound(s.ascending, f);
    return above + 1;
  }

  /** The best `limit` pks of every slice's top list, with their usernames. */
  async top(order: TopOrder, limit: number): Promise<TopEntry[]> {
    await this.fresh();
    const all: Ranked[] = [];
    for (const s of this.snapshots) if (s) all.push(...(order === 'growth' ? s.growth : s.followers));
    const best = all.sort(order === 'growth' ? byGrowth : byFollowers).slice(0, limit);
    const names = await this.usernames(best.map((r) => r.pk));
    return best.map((r) => ({
      pk: r.pk,
      score: order === 'growth' ? r.growth : r.f,
      username: names.get(r.pk) ?? '',
      followerCount: r.f,
      followingCount: r.g,
      growth: Number.isNaN(r.growth) ? null : r.growth,
    }));
  }

  /** Tracked influencers and the average of their latest followerCount; `rankedAt` is the oldest snapshot's interval. */
  async summary(): Promise<{ influencers: number; averageFollowers: number | null; rankedAt: number | null }> {
    await this.fresh();
    let count = 0;
    let total = 0;
    let rankedAt: number | null = null;
    for (const s of this.snapshots) {
      if (!s) continue;
      count += s.count;
      total += s.total;
      rankedAt = rankedAt === null ? s.asOf : Math.min(rankedAt, s.asOf);
    }
    return {
      influencers: count,
      averageFollowers: count > 0 ? Math.round((total / count) * 100) / 100 : null,
      rankedAt,
    };
  }

  /** The next question reads the snapshots again, and waits for them. */
  reload(): void {
    this.checkedAt = -Infinity;
    this.held = false;
  }

  /**
   * At most once a `recheckMs` (a second), one request shared by the callers of that moment: reload
   * the slices that changed. Snapshots already held answer meanwhile (at most one recheck older):
   * waiting would hold every request of that moment for the reload's round trips, which is what
   * made the read API's p99; a recheck of 0 (tests) waits every time.
   */
  private fresh(): Promise<void> {
    if (this.now() - this.checkedAt < this.recheckMs) return Promise.resolve();
    this.checking ??= this.load().finally(() => {
      this.checking = undefined;
    });
    if (this.held && this.recheckMs > 0) {
      // a failed reload is asked again by the next question; the snapshots held still answer
      this.checking.catch(() => undefined);
      return Promise.resolve();
    }
    return this.checking;
  }

  private async load(): Promise<void> {
    await Promise.all(
      Array.from({ length: this.slices }, async (_, slice) => {
        const k = sliceKeys(this.cluster, this.slices, slice);
        const header = await this.redis.getrangeBuffer(k.ranking, 0, HEADER_BYTES - 1);
        if (header.length < HEADER_BYTES) {
          this.snapshots[slice] = null;
          return;
        }
        const held = this.snapshots[slice];
        if (held && held.takenAt === header.readDoubleBE(9) && held.asOf === header.readDoubleBE(1)) return;
        const whole = await this.redis.getBuffer(k.ranking);
        this.snapshots[slice] = whole ? decodeRanking(whole) : null;
      }),
    );
    this.checkedAt = this.now();
    this.held = true;
  }

  private async usernames(pks: number[]): Promise<Map<number, string>> {
    const bySlice = new Map<number, number[]>();
    for (const pk of pks) {
      const list = bySlice.get(pk % this.slices) ?? [];
      list.push(pk);
      bySlice.set(pk % this.slices, list);
    }
    const out = new Map<number, string>();
    await Promise.all(
      [...bySlice].map(async ([slice, list]) => {
        const names = await this.redis.hmget(
          sliceKeys(this.cluster, this.slices, slice).usernames,
          ...list.map(String),
        );
        list.forEach((pk, i) => out.set(pk, names[i] ?? ''));
      }),
    );
    return out;
  }
}
