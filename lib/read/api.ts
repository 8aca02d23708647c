// The read API's server: node:http, a bound on requests at once, the dashboard's files, serve's
// health and metrics, CORS, request ids, and the connections' lifecycle (openApi). The JSON routes
// are routes.ts; their inputs, params.ts; the files, assets.ts.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MongoClient } from 'mongodb';
import type { Logger } from '../shared/log.js';
import { VERSION } from '../shared/version.js';
import { connectMongo, createMongo, watchReachable } from '../shared/mongo.js';
import { connectRedis, createRedis, redisTarget } from '../shared/redis.js';
import { loadLayout, type LayoutSettings } from '../storage/format/layout.js';
import { TimelineReader } from '../storage/read/reader.js';
import { Totals } from '../storage/state/totals.js';
import { ApiMetrics } from './api-metrics.js';
import { loadAssets } from './assets.js';
import { Cors } from './cors.js';
import { RequestGate } from './request-gate.js';
import { ApiRoutes, HttpError, type ApiDeps, type ReadSettings } from './routes.js';

export interface ApiServer {
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** How many API requests run at once, and how many more wait their turn; past that: 503 with Retry-After. */
export interface ApiLimits {
  maxInFlight?: number;
  maxQueued?: number;
  /** how long the ranking snapshots serve before the API asks for newer ones (default a second) */
  rankingsRecheckMs?: number;
}
const MAX_IN_FLIGHT = 32;
const MAX_QUEUED = 256;

const JSON_HEADERS = {
  'Content-Type': 'application/json; charset=utf-8',
  'Cache-Control': 'no-store',
  'X-Content-Type-Options': 'nosniff',
};

/** A proxy's request id is kept when it looks like one; otherwise the API makes its own. */
const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomBytes(6).toString('hex');
}

/**
 * The read API and the dashboard over node:http. Every route is a few index lookups: Redis hashes
 * and sorted sets for the figures, rank and top lists, finds by exact _id of buckets and rollups for a
 * chart. A 5xx answer names its request id, never the cause: that goes to the log under the same id.
 */
export async function startApi(deps: ApiDeps, opts: { host: string; port: number } & ApiLimits): Promise<ApiServer> {
  const assets = loadAssets();
  const totals = new Totals(deps.redis, deps.config.cluster, deps.reader.layout.slices, opts.rankingsRecheckMs);
  const routes = new ApiRoutes(deps, totals, opts.rankingsRecheckMs);
  const gate = new RequestGate(opts.maxInFlight ?? MAX_IN_FLIGHT, opts.maxQueued ?? MAX_QUEUED);
  const cors = new Cors(deps.config.corsOrigin);
  const up = () => ({ redisUp: deps.redis.status === 'ready', mongoUp: deps.mongoUp?.() ?? true });
  const metrics = new ApiMetrics(() => ({ running: gate.running, waiting: gate.waiting, ...up() }), {
    cluster: deps.config.cluster,
    version: VERSION,
  });

  /** serve's own health and metrics, answered outside the gate; false for any other path. */
  const operational = async (path: string, res: ServerResponse): Promise<boolean> => {
    const text = (status: number, body: string, type = 'text/plain; charset=utf-8'): true => {
      res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      res.end(res.req.method === 'HEAD' ? undefined : body);
      return true;
    };
    if (path === '/healthz') return text(200, 'ok\n');
    if (path === '/metrics') return text(200, await metrics.text(), metrics.registry.contentType);
    if (path !== '/readyz') return false;
    const { redisUp, mongoUp } = up();
    const reasons = [...(redisUp ? [] : ['Redis unreachable']), ...(mongoUp ? [] : ['MongoDB unreachable'])];
    return reasons.length ? text(503, `not ready: ${reasons.join('; ')}\n`) : text(200, 'ready\n');
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const started = performance.now();
    const id = requestId(req);
    let route = 'none';
    res.setHeader('X-Request-Id', id);
    res.on('finish', () => metrics.observe(route, res.statusCode, (performance.now() - started) / 1000));
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendJson(res, 400, { error: 'bad request URL' });
    }
    try {
      if (url.pathname.startsWith('/api/')) {
        const c = cors.answer(req);
        if (c.kind !== 'off') for (const [k, v] of Object.entries(c.headers)) res.setHeader(k, v);
        if (c.kind === 'preflight') {
          route = 'preflight';
          if (c.error) return sendJson(res, c.status, { error: c.error });
          res.writeHead(c.status);
          return void res.end();
        }
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('Allow', 'GET, HEAD');
        throw new HttpError(405, `method ${req.method} not allowed: the API is read-only (GET)`);
      }
      if (await operational(url.pathname, res)) {
        route = 'health';
        return;
      }
      const asset = assets.get(url.pathname === '/index.html' ? '/' : url.pathname);
      if (asset) {
        route = 'asset';
        res.writeHead(200, {
          'Content-Type': asset.type,
          'Content-Length': asset.body.length,
          'Cache-Control': 'no-cache',
          'X-Content-Type-Options': 'nosniff',
        });
        res.end(req.method === 'HEAD' ? undefined : asset.body);
        return;
      }
      const matched = routes.match(url);
      if (matched) route = matched.name;
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
      if (err instanceof HttpError) {
        return sendJson(
          res,
          err.status,
          err.status >= 500 ? { error: err.message, requestId: id } : { error: err.message },
        );
      }
      deps.log.warn({ requestId: id, err: (err as Error).message, url: req.url }, 'API request failed');
      const error = `storage unavailable: the cause is in the server log under request ${id}`;
      sendJson(res, 503, { error, requestId: id });
    }
  };
  const server = createServer({ keepAlive: true }, (req, res) => {
    void handle(req, res);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new Error(`port ${opts.port} on ${opts.host} is already in use`) : err);
    });
    server.listen(opts.port, opts.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}`,
    port,
    stop: () =>
      (closing ??= new Promise<void>((resolve) => {
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

/** What openApi connects with, beside what the routes answer with. */
export interface ApiSettings extends ReadSettings, LayoutSettings {
  redisUrl: string;
  redisClusterNodes: readonly string[];
  mongoUrl: string;
  mongoDb: string;
}

/** The API with its own connections (reconnecting for ever, failing requests at once while down); close() closes them too. */
export async function openApi(
  config: ApiSettings,
  log: Logger,
  opts: { host: string; port: number },
): Promise<ApiServer> {
  const target = redisTarget(config);
  const redis = createRedis(target, log, `${config.cluster}:api`);
  const mongo: MongoClient = createMongo(config.mongoUrl);
  // watched from the start: the driver reports reachability as topology changes
  const mongoUp = watchReachable(mongo);
  const closeClients = async (): Promise<void> => {
    await mongo.close().catch(() => undefined);
    await redis.quit().catch(() => redis.disconnect());
  };
  let api: ApiServer;
  try {
    const [db] = await Promise.all([
      connectMongo(mongo, config.mongoUrl, config.mongoDb, log),
      connectRedis(redis, target, log),
    ]);
    const reader = new TimelineReader(redis, db, await loadLayout(db, config), config.cluster);
    api = await startApi({ config, redis, reader, log, mongoUp }, opts);
  } catch (err) {
    await closeClients();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    url: api.url,
    port: api.port,
    stop: () => (closing ??= api.stop().then(closeClients)),
  };
}
