// The read API's JSON routes: each checks its input (a 400 naming what is wrong), then reads the
// totals in Redis and the timeline in MongoDB. The server around them is api.ts.
import type { RedisClient } from '../shared/redis.js';
import { readStatus } from '../cluster/status.js';
import type { Config } from '../ops/config.js';
import type { Logger } from '../ops/log.js';
import { parsePk } from '../ring/pk-universe.js';
import type { TimelineReader } from '../storage/read/reader.js';
import type { Totals, TopEntry, TopOrder } from '../storage/state/totals.js';
import { totalsState } from '../storage/state/totals-state.js';
import { RANKINGS_RECHECK_MS } from '../storage/state/ranking.js';
import { MAX_DATE_MS, parseTime } from '../shared/util.js';
import { ratio, readSummary, readTimeline } from './influencer.js';

/** What the read API needs: open connections and the cluster's config (name, pk universe). */
export interface ApiDeps {
  config: Config;
  redis: RedisClient;
  reader: TimelineReader;
  log: Logger;
}

/** Longest timeline range one request may read. */
export const MAX_RANGE_MS = 31 * 86_400_000;
export const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 10;
const DEFAULT_RANGE_MS = 3_600_000;
/** How long one read of the cluster status serves every request (member cards change every TTL/3 anyway). */
const CLUSTER_STATUS_SHARED_MS = 1000;

/** A request the API refuses: answered with `status` and `{"error": message}`. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The JSON routes; each validates its input (400), then reads. */
export class ApiRoutes {
  // reading the cluster SCANs for member keys: a thousand viewers share one read a second
  private readonly clusterStatus = shared(CLUSTER_STATUS_SHARED_MS, () =>
    readStatus(this.deps.redis, this.deps.config, Date.now(), 'index'),
  );

  // one shared read per sort, of the largest limit asked: two lists of at most MAX_LIMIT entries
  private readonly topLists: Record<TopOrder, (limit: number) => Promise<TopEntry[]>>;

  /** `topSharedMs`: a top list changes with the ranking snapshots only: the viewers of that long share one read */
  constructor(
    private readonly deps: ApiDeps,
    private readonly totals: Totals,
    topSharedMs = RANKINGS_RECHECK_MS,
  ) {
    this.topLists = {
      followers: shared(topSharedMs, (limit) => this.totals.top('followers', limit)),
      growth: shared(topSharedMs, (limit) => this.totals.top('growth', limit)),
    };
  }

  dispatch(url: URL): Promise<unknown> {
    const path = url.pathname;
    if (path === '/api/stats') return this.stats();
    if (path === '/api/cluster') return this.clusterStatus();
    if (path === '/api/influencers') return this.top(url.searchParams);
    const m = /^\/api\/influencers\/([^/]+)(\/timeline)?$/.exec(path);
    if (m) {
      const pk = this.parsePk(m[1]);
      return m[2] ? this.timeline(pk, url.searchParams) : this.influencer(pk);
    }
    const routes = '/api/influencers/:pk, /api/influencers/:pk/timeline, /api/influencers, /api/stats, /api/cluster';
    throw new HttpError(404, `no route ${path}: see ${routes}`);
  }

  private async influencer(pk: number): Promise<unknown> {
    const [summary, totals] = await Promise.all([
      readSummary(this.totals, pk),
      totalsState(this.deps.redis, this.deps.config.cluster, this.totals.slices),
    ]);
    if (!summary) throw noData(pk);
    // while Redis's totals are rebuilt the rank would be wrong: say so instead of giving one
    if (totals === 'ready') return { ...summary, totals };
    return { ...summary, rank: null, totals, note: 'rank and averages are being rebuilt from MongoDB' };
  }

  private async timeline(pk: number, q: URLSearchParams): Promise<unknown> {
    const toRaw = q.get('to');
    const fromRaw = q.get('from');
    const to = toRaw === null ? Date.now() : timeParam('to', toRaw);
    const from = fromRaw === null ? Math.max(-MAX_DATE_MS, to - DEFAULT_RANGE_MS) : timeParam('from', fromRaw);
    if (from > to)
      throw new HttpError(400, `from is after to: ${new Date(from).toISOString()} > ${new Date(to).toISOString()}`);
    if (to - from > MAX_RANGE_MS) {
      const days = Math.ceil((to - from) / 86_400_000);
      throw new HttpError(400, `range of ${days} days is too long: at most ${MAX_RANGE_MS / 86_400_000} days`);
    }
    const [exists, timeline] = await Promise.all([
      this.totals.exists(pk),
      readTimeline(this.deps.reader, pk, from, to),
    ]);
    if (!exists && timeline.points.length === 0) throw noData(pk);
    return {
      pk,
      ...timeline.range,
      resolution: timeline.resolution,
      bucketMs: this.deps.reader.layout.bucketMs,
      points: timeline.points,
    };
  }

  private async top(q: URLSearchParams): Promise<unknown> {
    const sort = q.get('sort') ?? 'followers';
    if (sort !== 'followers' && sort !== 'growth') {
      throw new HttpError(400, `sort=${JSON.stringify(sort)} is not valid: expected followers or growth`);
    }
    const limitRaw = q.get('limit');
    const limit = limitRaw === null ? DEFAULT_LIMIT : Number(limitRaw);
    if (limitRaw !== null && (!/^\d+$/.test(limitRaw) || limit < 1 || limit > MAX_LIMIT)) {
      throw new HttpError(
        400,
        `limit=${JSON.stringify(limitRaw)} is not valid: expected an integer from 1 to ${MAX_LIMIT}`,
      );
    }
    const entries = (await this.topLists[sort](limit)).slice(0, limit);
    let rank = 0;
    const influencers = entries.map((e, i) => {
      // ties share a rank: the list starts at the top, so every higher score is before this one
      if (i === 0 || e.score !== entries[i - 1].score) rank = i + 1;
      const row = {
        pk: e.pk,
        username: e.username,
        followerCount: e.followerCount,
        followingCount: e.followingCount,
        followerRatio:
          e.followerCount !== null && e.followingCount !== null ? ratio(e.followerCount, e.followingCount) : null,
        growth: e.growth,
      };
      return sort === 'followers' ? { rank, ...row } : { position: i + 1, ...row };
    });
    return { sort, limit, influencers };
  }

  private async stats(): Promise<unknown> {
    const { config } = this.deps;
    const [summary, totals] = await Promise.all([
      this.totals.summary(),
      totalsState(this.deps.redis, config.cluster, this.totals.slices),
    ]);
    const universe = { pkMin: config.pkMin, pkMax: config.pkMax, size: config.pkMax - config.pkMin + 1 };
    return { cluster: config.cluster, ...summary, totals, universe };
  }

  private parsePk(encoded: string): number {
    const { pkMin, pkMax } = this.deps.config;
    let raw = encoded;
    try {
      raw = decodeURIComponent(encoded);
    } catch {
      /* shown as sent */
    }
    const parsed = parsePk(raw, pkMin, pkMax);
    if ('error' in parsed) throw new HttpError(400, parsed.error);
    return parsed.pk;
  }
}

/**
 * The result of `read(size)`, shared by every caller within `ms` of the call that made it that asks
 * for no more than that size (a larger ask reads again, at its size); a failure is not kept.
 */
function shared<T>(ms: number, read: (size: number) => Promise<T>): (size?: number) => Promise<T> {
  let at = -Infinity;
  let size = 0;
  let last: Promise<T> | undefined;
  return (asked = 0) => {
    const now = Date.now();
    if (!last || now - at >= ms || asked > size) {
      at = now;
      size = asked;
      const p = read(size);
      last = p;
      p.catch(() => {
        if (last === p) last = undefined;
      });
    }
    return last;
  };
}

function noData(pk: number): HttpError {
  return new HttpError(404, `pk ${pk} has no data yet (no node has stored a sample for it)`);
}

/** A time parameter: an ISO time or epoch milliseconds, else a 400 naming it. */
function timeParam(name: string, raw: string): number {
  try {
    return parseTime(raw);
  } catch (err) {
    throw new HttpError(400, `${name}=${JSON.stringify(raw)} is not valid: ${(err as Error).message}`);
  }
}
