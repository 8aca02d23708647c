// The read API's server: node:http, a bound on requests at once, the dashboard's files, and the
// connections' lifecycle (openApi). The JSON routes are routes.ts; the files, assets.ts.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MongoClient } from 'mongodb';
import type { Config } from '../ops/config.js';
import type { Logger } from '../ops/log.js';
import { connectMongo, createMongo } from '../shared/mongo.js';
import { connectRedis, createRedis } from '../shared/redis.js';
import { loadLayout } from '../storage/format/layout.js';
import { TimelineReader } from '../storage/read/reader.js';
import { Totals } from '../storage/state/totals.js';
import { loadAssets } from './assets.js';
import { ApiRoutes, HttpError, type ApiDeps } from './routes.js';

export interface ApiServer {
  url: string;
  port: number;
  close(): Promise<void>;
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

/**
 * The read API and the dashboard over node:http. Every route is a few index lookups: Redis hashes
 * and sorted sets for the figures, rank and top lists, finds by exact _id of buckets and rollups for a chart.
 */
export async function startApi(deps: ApiDeps, opts: { host: string; port: number } & ApiLimits): Promise<ApiServer> {
  const assets = loadAssets();
  const totals = new Totals(deps.redis, deps.config.cluster, deps.reader.layout.slices, opts.rankingsRecheckMs);
  const routes = new ApiRoutes(deps, totals, opts.rankingsRecheckMs);
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
        res.writeHead(200, {
          'Content-Type': asset.type,
          'Content-Length': asset.body.length,
          'Cache-Control': 'no-cache',
          'X-Content-Type-Options': 'nosniff',
        });
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
    close: () =>
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

/** At most `limit` requests run at once and `queue` more wait their turn (in order); the rest are refused. */
class RequestGate {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    private readonly limit: number,
    private readonly queue: number,
  ) {}

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
    const [db] = await Promise.all([
      connectMongo(mongo, config.mongoUrl, config.mongoDb, log),
      connectRedis(redis, config.redisUrl, log),
    ]);
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
