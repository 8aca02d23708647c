import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import type { MongoClient } from 'mongodb';
import type { Config } from '../ops/config.js';
import type { Logger } from '../ops/log.js';
import { PACKAGE_ROOT } from '../ops/version.js';
import { connectMongo, createMongo } from '../shared/mongo.js';
import { ratio, readSummary, readTimeline } from './influencer.js';
import { connectRedis, createRedis } from '../shared/redis.js';
import { readStatus } from '../cluster/status.js';
import { parsePk } from '../ring/pk-universe.js';
import { loadLayout } from '../storage/layout.js';
import { TimelineReader } from '../storage/reader.js';
import { Totals, type TopEntry, type TopOrder } from '../storage/totals.js';
import { totalsState } from '../storage/totals-state.js';
import { MAX_DATE_MS, parseTime } from '../shared/util.js';

/** What the read API needs: open connections and the cluster's config (name, pk universe). */
export interface ApiDeps {
  config: Config;
  redis: Redis;
  reader: TimelineReader;
  log: Logger;
}

export interface ApiServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Longest timeline range one request may read. */
export const MAX_RANGE_MS = 31 * 86_400_000;
export const MAX_LIMIT = 1000;
const DEFAULT_LIMIT = 10;
const DEFAULT_RANGE_MS = 3_600_000;
/** The latest (and, negated, the earliest) time a JavaScript Date holds. */
/** How long one read of the cluster status serves every request (member cards change every TTL/3 anyway). */
const CLUSTER_STATUS_SHARED_MS = 1000;
/** a top list changes once an interval: the viewers of one second share one read of it */
const TOP_SHARED_MS = 1000;

/** How many API requests run at once, and how many more wait their turn; past that: 503 with Retry-After. */
export interface ApiLimits {
  maxInFlight?: number;
  maxQueued?: number;
}
const MAX_IN_FLIGHT = 32;
const MAX_QUEUED = 256;

/** A request the API refuses: answered with `status` and `{"error": message}`. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const JSON_HEADERS = { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' };

interface Asset { type: string; body: Buffer }

/** The dashboard's files (the package's lib/read/dashboard), and uPlot's from node_modules (no CDN); read once. */
function loadAssets(): Map<string, Asset> {
  const dir = join(PACKAGE_ROOT, 'lib', 'read', 'dashboard');
  const uplot = createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js');
  const file = (path: string, type: string): Asset => ({ type, body: readFileSync(path) });
  return new Map([
    ['/', file(join(dir, 'index.html'), 'text/html; charset=utf-8')],
    ['/app.js', file(join(dir, 'app.js'), 'text/javascript; charset=utf-8')],
    ['/style.css', file(join(dir, 'style.css'), 'text/css; charset=utf-8')],
    ['/vendor/uPlot.iife.min.js', file(uplot, 'text/javascript; charset=utf-8')],
    ['/vendor/uPlot.min.css', file(uplot.replace(/uPlot\.iife\.min\.js$/, 'uPlot.min.css'), 'text/css; charset=utf-8')],
  ]);
}

/**
 * The read API and the dashboard over node:http. Every route is a few index lookups: Redis hashes
 * and sorted sets for the figures, rank and top lists, finds by exact _id of buckets and rollups for a chart.
 */
export async function startApi(deps: ApiDeps, opts: { host: string; port: number } & ApiLimits): Promise<ApiServer> {
  const assets = loadAssets();
  const totals = new Totals(deps.redis, deps.config.cluster);
  const routes = new ApiRoutes(deps, totals);
  const gate = new RequestGate(opts.maxInFlight ?? MAX_IN_FLIGHT, opts.maxQueued ?? MAX_QUEUED);

  const server = createServer({ keepAlive: true }, (req, res) => {
    void handle(req, res);
  });
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendJson(res, 400, { error: 'bad request URL' });
    }
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        throw new HttpError(405, `method ${req.method} not allowed: the API is read-only (GET)`);
      }
      const asset = assets.get(url.pathname === '/index.html' ? '/' : url.pathname);
      if (asset) {
        res.writeHead(200, { 'Content-Type': asset.type, 'Content-Length': asset.body.length, 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff' });
        res.end(req.method === 'HEAD' ? undefined : asset.body);
        return;
      }
      const turn = gate.enter();
      if (!turn) {
        res.setHeader('Retry-After', '1');
        throw new HttpError(503, `too many requests at once (${gate.describe()}): try again in a second`);
      }
      await turn;
      try {
        sendJson(res, 200, await routes.dispatch(url));
      } finally {
        gate.leave();
      }
    } catch (err) {
      if (err instanceof HttpError) return sendJson(res, err.status, { error: err.message });
      deps.log.warn({ err: (err as Error).message, url: req.url }, 'API request failed');
      sendJson(res, 503, { error: `storage unavailable: ${(err as Error).message}` });
    }
  };

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(err.code === 'EADDRINUSE' ? new Error(`port ${opts.port} on ${opts.host} is already in use`) : err));
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`,
    port,
    close: () => (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      setTimeout(() => server.closeAllConnections(), 2000).unref();
    })),
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { ...JSON_HEADERS, 'Content-Length': Buffer.byteLength(text) });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** The JSON routes; each validates its input (400), then reads. */
class ApiRoutes {
  // reading the cluster SCANs for member keys: a thousand viewers share one read a second
  private readonly clusterStatus = shared(CLUSTER_STATUS_SHARED_MS, () => readStatus(this.deps.redis, this.deps.config, Date.now(), 'index'));

  // one shared read per sort, of the largest limit asked: two lists of at most MAX_LIMIT entries
  private readonly topLists: Record<TopOrder, (limit: number) => Promise<TopEntry[]>> = {
    followers: shared(TOP_SHARED_MS, (limit) => this.totals.top('followers', limit)),
    growth: shared(TOP_SHARED_MS, (limit) => this.totals.top('growth', limit)),
  };

  constructor(private readonly deps: ApiDeps, private readonly totals: Totals) {}

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
    throw new HttpError(404, `no route ${path}: see /api/influencers/:pk, /api/influencers/:pk/timeline, /api/influencers, /api/stats, /api/cluster`);
  }

  private async influencer(pk: number): Promise<unknown> {
    const [summary, totals] = await Promise.all([readSummary(this.totals, pk), totalsState(this.deps.redis, this.deps.config.cluster)]);
    if (!summary) throw noData(pk);
    // while Redis's totals are rebuilt the rank would be wrong: say so instead of giving one
    return totals === 'ready' ? { ...summary, totals } : { ...summary, rank: null, totals, note: 'rank and averages are being rebuilt from MongoDB' };
  }

  private async timeline(pk: number, q: URLSearchParams): Promise<unknown> {
    const toRaw = q.get('to');
    const fromRaw = q.get('from');
    const to = toRaw === null ? Date.now() : timeParam('to', toRaw);
    const from = fromRaw === null ? Math.max(-MAX_DATE_MS, to - DEFAULT_RANGE_MS) : timeParam('from', fromRaw);
    if (from > to) throw new HttpError(400, `from is after to: ${new Date(from).toISOString()} > ${new Date(to).toISOString()}`);
    if (to - from > MAX_RANGE_MS) throw new HttpError(400, `range of ${Math.ceil((to - from) / 86_400_000)} days is too long: at most ${MAX_RANGE_MS / 86_400_000} days`);
    const [exists, timeline] = await Promise.all([this.totals.exists(pk), readTimeline(this.deps.reader, pk, from, to)]);
    if (!exists && timeline.points.length === 0) throw noData(pk);
    return { pk, ...timeline.range, resolution: timeline.resolution, bucketMs: this.deps.reader.layout.bucketMs, points: timeline.points };
  }

  private async top(q: URLSearchParams): Promise<unknown> {
    const sort = q.get('sort') ?? 'followers';
    if (sort !== 'followers' && sort !== 'growth') throw new HttpError(400, `sort=${JSON.stringify(sort)} is not valid: expected followers or growth`);
    const limitRaw = q.get('limit');
    const limit = limitRaw === null ? DEFAULT_LIMIT : Number(limitRaw);
    if (limitRaw !== null && (!/^\d+$/.test(limitRaw) || limit < 1 || limit > MAX_LIMIT)) {
      throw new HttpError(400, `limit=${JSON.stringify(limitRaw)} is not valid: expected an integer from 1 to ${MAX_LIMIT}`);
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
        followerRatio: e.followerCount !== null && e.followingCount !== null ? ratio(e.followerCount, e.followingCount) : null,
        growth: e.growth,
      };
      return sort === 'followers' ? { rank, ...row } : { position: i + 1, ...row };
    });
    return { sort, limit, influencers };
  }

  private async stats(): Promise<unknown> {
    const { config } = this.deps;
    const [summary, totals] = await Promise.all([this.totals.summary(), totalsState(this.deps.redis, config.cluster)]);
    return { cluster: config.cluster, ...summary, totals, universe: { pkMin: config.pkMin, pkMax: config.pkMax, size: config.pkMax - config.pkMin + 1 } };
  }

  private parsePk(encoded: string): number {
    const { pkMin, pkMax } = this.deps.config;
    let raw = encoded;
    try { raw = decodeURIComponent(encoded); } catch { /* shown as sent */ }
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
      p.catch(() => { if (last === p) last = undefined; });
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

/** At most `limit` requests run at once and `queue` more wait their turn (in order); the rest are refused. */
class RequestGate {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number, private readonly queue: number) {}

  /** Resolves when the request may run (then call leave()); null when it must be refused. */
  enter(): Promise<void> | null {
    if (this.running < this.limit) {
      this.running++;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.queue) return null;
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the next waiting request, if any. */
  leave(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  describe(): string {
    return `${this.limit} running, ${this.queue} waiting`;
  }
}

/** The API with its own connections (reconnecting for ever, failing requests at once while down); close() closes them too. */
export async function openApi(config: Config, log: Logger, opts: { host: string; port: number }): Promise<ApiServer> {
  const redis = createRedis(config.redisUrl, log, `${config.cluster}:api`);
  const mongo: MongoClient = createMongo(config.mongoUrl);
  const closeClients = async (): Promise<void> => {
    await mongo.close().catch(() => undefined);
    await redis.quit().catch(() => redis.disconnect());
  };
  let api: ApiServer;
  try {
    const [db] = await Promise.all([connectMongo(mongo, config.mongoUrl, config.mongoDb, log), connectRedis(redis, config.redisUrl, log)]);
    const reader = new TimelineReader(redis, db, await loadLayout(db, config), config.cluster);
    api = await startApi({ config, redis, reader, log }, opts);
  } catch (err) {
    await closeClients();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    url: api.url,
    port: api.port,
    close: () => (closing ??= api.close().then(closeClients)),
  };
}
