// The read API's JSON routes: each checks its input (a 400 naming what is wrong), then reads the
// totals in Redis and the timeline in MongoDB. The server around them is api.ts.
import type { RedisClient } from '../shared/redis.js';
import { readStatus, type StatusSettings } from '../cluster/status.js';
import type { Logger } from '../shared/log.js';
import type { TimelineReader } from '../storage/read/reader.js';
import type { Totals, TopEntry, TopOrder } from '../storage/state/totals.js';
import { totalsState, type TotalsState } from '../storage/state/totals-state.js';
import { RANKINGS_RECHECK_MS } from '../storage/state/ranking.js';
import { ratio, readSummary, readTimeline } from './influencer.js';
import { openApiDocument } from './openapi.js';
import { HttpError, pkParam, rangeParams, topParams } from './params.js';

export { HttpError };

/** The settings the read API answers with: the cluster's name, its pk universe, the origins it allows. */
export interface ReadSettings extends StatusSettings {
  corsOrigin: string[];
}

/** What the read API needs: open connections and the cluster's config (name, pk universe). */
export interface ApiDeps {
  config: ReadSettings;
  redis: RedisClient;
  reader: TimelineReader;
  log: Logger;
  /** whether the MongoDB driver reaches a server (serve's /readyz); reachable when not given */
  mongoUp?: () => boolean;
}

/** How long one read of the cluster status serves every request (member cards change every TTL/3 anyway). */
const CLUSTER_STATUS_SHARED_MS = 1000;

/** A matched route: its name as the OpenAPI document has it (the metrics' label), and its answer. */
export interface Route {
  name: string;
  answer: () => Promise<unknown>;
}

const ROUTES =
  '/api/v1/influencers/{pk}, /api/v1/influencers/{pk}/timeline, /api/v1/influencers, /api/v1/stats, ' +
  '/api/v1/cluster, /api/openapi.json (the same without /v1 too)';

/** The JSON routes; each validates its input (400), then reads. */
export class ApiRoutes {
  // reading the cluster SCANs for member keys: a thousand viewers share one read a second
  private readonly clusterStatus = shared(CLUSTER_STATUS_SHARED_MS, () =>
    readStatus(this.deps.redis, this.deps.config, Date.now(), 'index'),
  );

  // one shared read per sort, of the largest limit asked: two lists of at most MAX_LIMIT entries
  private readonly topLists: Record<TopOrder, (limit: number) => Promise<TopEntry[]>>;

  // whether every slice's totals are trusted (a read of each slice's marks): shared like the lists
  private readonly totalsState: () => Promise<TotalsState>;

  private readonly document = openApiDocument();

  /**
   * `topSharedMs`: a top list changes with the ranking snapshots only: the viewers of that long share
   * one read, of the lists and of the totals' state
   */
  constructor(
    private readonly deps: ApiDeps,
    private readonly totals: Totals,
    topSharedMs = RANKINGS_RECHECK_MS,
  ) {
    this.topLists = {
      followers: shared(topSharedMs, (limit) => this.totals.top('followers', limit)),
      growth: shared(topSharedMs, (limit) => this.totals.top('growth', limit)),
    };
    this.totalsState = shared(topSharedMs, () => totalsState(deps.redis, deps.config.cluster, totals.slices));
  }

  /** The route of a path (`/api/v1/...`, or its alias without `/v1`), or undefined when none. */
  match(url: URL): Route | undefined {
    const path = url.pathname;
    if (path === '/api/openapi.json') return { name: path, answer: async () => this.document };
    const m = /^\/api(?:\/v1)?(\/.*)$/.exec(path);
    if (!m) return undefined;
    const rest = m[1];
    const q = url.searchParams;
    if (rest === '/stats') return { name: '/api/v1/stats', answer: () => this.stats() };
    if (rest === '/cluster') return { name: '/api/v1/cluster', answer: () => this.clusterStatus() };
    if (rest === '/influencers') return { name: '/api/v1/influencers', answer: () => this.top(q) };
    const inf = /^\/influencers\/([^/]+)(\/timeline)?$/.exec(rest);
    if (!inf) return undefined;
    const { pkMin, pkMax } = this.deps.config;
    if (inf[2]) {
      const answer = () => this.timeline(pkParam(inf[1], pkMin, pkMax), q);
      return { name: '/api/v1/influencers/{pk}/timeline', answer };
    }
    return { name: '/api/v1/influencers/{pk}', answer: () => this.influencer(pkParam(inf[1], pkMin, pkMax)) };
  }

  /** The answer of an API path; a 404 naming the routes when there is none. */
  dispatch(url: URL): Promise<unknown> {
    const route = this.match(url);
    if (!route) throw new HttpError(404, `no route ${url.pathname}: see ${ROUTES}`);
    return route.answer();
  }

  private async influencer(pk: number): Promise<unknown> {
    const [summary, totals] = await Promise.all([readSummary(this.totals, pk), this.totalsState()]);
    if (!summary) throw noData(pk);
    // while Redis's totals are rebuilt the rank would be wrong: say so instead of giving one
    if (totals === 'ready') return { ...summary, totals };
    return { ...summary, rank: null, totals, note: 'rank and averages are being rebuilt from MongoDB' };
  }

  private async timeline(pk: number, q: URLSearchParams): Promise<unknown> {
    const { from, to } = rangeParams(q, Date.now());
    const [exists, timeline] = await Promise.all([
      this.totals.exists(pk),
      readTimeline(this.deps.reader, pk, from, to),
    ]);
    if (!exists && timeline.points.length === 0) throw noData(pk);
    const { intervalMs, bucketMs } = this.deps.reader.layout;
    return {
      pk,
      ...timeline.range,
      resolution: timeline.resolution,
      stepMs: timeline.resolution === 'interval' ? intervalMs : bucketMs,
      bucketMs,
      points: timeline.points,
    };
  }

  private async top(q: URLSearchParams): Promise<unknown> {
    const { sort, limit } = topParams(q);
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
    const [summary, totals] = await Promise.all([this.totals.summary(), this.totalsState()]);
    const universe = { pkMin: config.pkMin, pkMax: config.pkMax, size: config.pkMax - config.pkMin + 1 };
    const { influencers, averageFollowers } = summary;
    const rankedAt = summary.rankedAt === null ? null : new Date(summary.rankedAt).toISOString();
    return { cluster: config.cluster, influencers, averageFollowers, rankedAt, totals, universe };
  }
}

/**
 * The result of `read(size)`, shared by every caller within `ms` of the call that made it that asks
 * for no more than that size (a larger ask reads again, at its size); a failure is not kept. While a
 * newer read is under way, the last answer (if it is under 5 × `ms` old and covers the size asked)
 * serves instead of holding the request; with `ms` 0 every call reads.
 */
function shared<T>(ms: number, read: (size: number) => Promise<T>): (size?: number) => Promise<T> {
  let at = -Infinity;
  let size = 0;
  let last: Promise<T> | undefined;
  let good: { answer: Promise<T>; size: number; at: number } | undefined;
  return (asked = 0) => {
    const now = Date.now();
    if (!last || now - at >= ms || asked > size) {
      at = now;
      size = asked;
      const [p, pSize, pAt] = [read(size), size, now];
      last = p;
      p.then(
        () => {
          if (!good || good.at < pAt) good = { answer: p, size: pSize, at: pAt };
        },
        () => {
          if (last === p) last = undefined;
        },
      );
    }
    if (ms > 0 && good && good.answer !== last && asked <= good.size && now - good.at < 5 * ms) return good.answer;
    return last!;
  };
}

function noData(pk: number): HttpError {
  return new HttpError(404, `pk ${pk} has no data yet (no node has stored a sample for it)`);
}
