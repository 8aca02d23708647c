import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';

/** How the mock Mockstagram behaves; every fault rate is a probability per influencer GET. */
export interface MockOptions {
  host: string;
  port: number;
  pkMin: number;
  count: number;
  seed?: number;
  suspiciousDelayScale: number;
  latencyMs: number;
  jitterMs: number;
  errorRate: number;
  rateLimitRate: number;
  retryAfterS: number;
  hangRate: number;
  malformedRate: number;
  badFieldRate: number;
}

export const DEFAULT_MOCK_OPTIONS: MockOptions = Object.freeze({
  host: '127.0.0.1',
  port: 3000,
  pkMin: 1_000_000,
  count: 1_000_000,
  suspiciousDelayScale: 1,
  latencyMs: 0,
  jitterMs: 0,
  errorRate: 0,
  rateLimitRate: 0,
  retryAfterS: 1,
  hangRate: 0,
  malformedRate: 0,
  badFieldRate: 0,
});

/** What `setFaults` may change on a running mock: the fault rates, Retry-After and the added latency. */
export type MockFaults = Partial<
  Pick<
    MockOptions,
    | 'hangRate'
    | 'errorRate'
    | 'rateLimitRate'
    | 'malformedRate'
    | 'badFieldRate'
    | 'retryAfterS'
    | 'latencyMs'
    | 'jitterMs'
  >
>;

export interface MockServer {
  url: string;
  port: number;
  close(): Promise<void>;
  stats(): { requests: number; influencers: number };
  /**
   * Changes the faults of the running server from its next request on (fault tests switch an
   * outage on and off); validated like the options, unnamed ones are kept. Hanging requests stay hung.
   */
  setFaults(faults: MockFaults): void;
  /** The options in force. */
  options(): MockOptions;
}

const PREFIX = '/api/v1/influencers/';
const SUSPICIOUS = '/is_suspicious';
const POST_SUSPICIOUS = '/api/v1/influencers/is_suspicious';
const SUSPICIOUS_RATIO = 5.64;
const FOLLOWERS_FLOOR = 5000;
const FOLLOWING_FLOOR = 50;
const COUNT_CEILING = 0x7fffffff; // counts live in Int32Arrays
const MAX_BODY = 64 * 1024;
const JSON_TYPE = 'application/json; charset=utf-8';

/** A precomputed response: status, raw header list and body, written with no per-request work. */
interface StaticReply {
  status: number;
  headers: string[];
  body: Buffer;
}

function staticReply(status: number, body: string, extra: string[] = []): StaticReply {
  const buf = Buffer.from(body);
  return { status, headers: ['Content-Type', JSON_TYPE, 'Content-Length', String(buf.length), ...extra], body: buf };
}

const NOT_FOUND_PK = staticReply(400, '{"error":{"name":"InfluencerNotFoundError"}}');
const NOT_FOUND_PATH = staticReply(404, '{"error":{"name":"NotFoundError"}}');
const UNAVAILABLE = staticReply(503, '{"error":{"name":"ServiceUnavailable"}}');

/** sfc32 seeded through splitmix32, with Box–Muller normals: small, fast and reproducible. */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  private spare = 0;
  private hasSpare = false;

  constructor(seed: number, stream: number) {
    let s = (Math.floor(seed) ^ Math.floor(seed / 2 ** 32) ^ Math.imul(stream, 0x9e3779b9)) >>> 0;
    const mix = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix();
    for (let i = 0; i < 12; i++) this.next();
  }

  /** Uniform in [0, 1). */
  next(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** Standard normal. */
  normal(): number {
    if (this.hasSpare) {
      this.hasSpare = false;
      return this.spare;
    }
    const r = Math.sqrt(-2 * Math.log(1 - this.next()));
    const theta = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(theta);
    this.hasSpare = true;
    return r * Math.cos(theta);
  }
}

const CHUNK_BITS = 12;
const CHUNK_SIZE = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK_SIZE - 1;

/**
 * Influencer counts by pk index, in typed-array chunks allocated on first use (0 following = not yet
 * created). Exported for the benchmark, which seeds the counts nodes would have stored.
 */
export class InfluencerTable {
  private readonly followers: (Int32Array | undefined)[];
  private readonly following: (Int32Array | undefined)[];
  created = 0;
  /** The counts of the influencer last touched, so callers need no result object. */
  followerCount = 0;
  followingCount = 0;

  constructor(
    count: number,
    private readonly rng: Random,
  ) {
    const chunks = Math.ceil(count / CHUNK_SIZE);
    this.followers = new Array(chunks).fill(undefined);
    this.following = new Array(chunks).fill(undefined);
  }

  /** Loads the influencer at index i into followerCount/followingCount, creating it if new; moves it one step if asked. */
  touch(i: number, move: boolean): void {
    const chunk = i >>> CHUNK_BITS;
    const at = i & CHUNK_MASK;
    let f = this.followers[chunk];
    let g = this.following[chunk];
    if (f === undefined || g === undefined) {
      f = this.followers[chunk] = new Int32Array(CHUNK_SIZE);
      g = this.following[chunk] = new Int32Array(CHUNK_SIZE);
    }
    const rng = this.rng;
    let followers = f[at];
    let following = g[at];
    if (following === 0) {
      followers = Math.max(Math.round(100000 * (1 + rng.normal())), FOLLOWERS_FLOOR);
      following = Math.max(Math.round(1000 * (1 + rng.normal())), FOLLOWING_FLOOR);
      this.created++;
    }
    if (move) {
      followers = Math.max(Math.round(followers + Math.min(10000, 0.05 * followers) * rng.normal()), FOLLOWERS_FLOOR);
      following = Math.max(Math.round(following + 100 * rng.normal()), FOLLOWING_FLOOR);
    }
    this.followerCount = f[at] = Math.min(followers, COUNT_CEILING);
    this.followingCount = g[at] = Math.min(following, COUNT_CEILING);
  }
}

/** The mock's is_suspicious answer: few followers per account followed. */
export function isSuspicious(followerCount: number, followingCount: number): boolean {
  return followerCount / followingCount <= SUSPICIOUS_RATIO;
}

function resolveOptions(options: Partial<MockOptions>): MockOptions {
  const o: MockOptions = { ...DEFAULT_MOCK_OPTIONS };
  for (const [k, v] of Object.entries(options)) if (v !== undefined) (o as unknown as Record<string, unknown>)[k] = v;
  const check = (name: keyof MockOptions, ok: boolean, allowed: string): void => {
    if (!ok) throw new RangeError(`mock option ${name}=${String(o[name])} is invalid: allowed ${allowed}`);
  };
  const int = (v: number, min: number, max = Number.MAX_SAFE_INTEGER): boolean =>
    Number.isInteger(v) && v >= min && v <= max;
  const nonNegative = (v: number): boolean => Number.isFinite(v) && v >= 0;
  check('host', typeof o.host === 'string' && o.host.length > 0, 'a host name or address');
  check('port', int(o.port, 0, 65535), 'an integer 0..65535');
  check('pkMin', int(o.pkMin, 0), 'a non-negative integer');
  check('count', int(o.count, 1, COUNT_CEILING) && o.pkMin + o.count <= Number.MAX_SAFE_INTEGER, 'a positive integer');
  check('seed', o.seed === undefined || Number.isFinite(o.seed), 'a finite number');
  check('suspiciousDelayScale', nonNegative(o.suspiciousDelayScale), 'a number >= 0');
  check('latencyMs', nonNegative(o.latencyMs), 'a number >= 0');
  check('jitterMs', nonNegative(o.jitterMs), 'a number >= 0');
  check('retryAfterS', int(o.retryAfterS, 0), 'a non-negative integer');
  const rates = ['hangRate', 'errorRate', 'rateLimitRate', 'malformedRate', 'badFieldRate'] as const;
  for (const r of rates) check(r, nonNegative(o[r]) && o[r] <= 1, 'a number 0..1');
  check('badFieldRate', rates.reduce((sum, r) => sum + o[r], 0) <= 1 + 1e-9, 'fault rates that add up to at most 1');
  return o;
}

/** Copies of one influencer's JSON with one field missing or wrong-typed, as a flaky upstream might send. */
function badFieldBody(variant: number, pk: number, f: number, g: number): string {
  switch (variant) {
    case 0:
      return `{"pk":${pk},"username":"influencer-${pk}","followerCount":"${f}","followingCount":${g}}`;
    case 1:
      return `{"pk":${pk},"followerCount":${f},"followingCount":${g}}`;
    case 2:
      return `{"pk":${pk},"username":"influencer-${pk}","followerCount":${-f},"followingCount":${g}}`;
    case 3:
      return `{"pk":${pk},"username":"influencer-${pk}","followerCount":${f}}`;
    default:
      return `{"pk":${pk},"username":"influencer-${pk}","followerCount":${f},"followingCount":${g}.5}`;
  }
}
const BAD_FIELD_VARIANTS = 5;

/** Parses digits url[from, to) as a pk; -1 when empty, not all digits, or too long to be exact. */
function parsePk(url: string, from: number, to: number): number {
  if (to <= from || to - from > 15) return -1;
  let pk = 0;
  for (let i = from; i < to; i++) {
    const c = url.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    pk = pk * 10 + c;
  }
  return pk;
}

/** Why a POSTed influencer cannot be judged, or '' when it can. */
function invalidInfluencer(body: unknown): string {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object';
  const b = body as Record<string, unknown>;
  if (!Number.isSafeInteger(b.pk)) return 'pk must be an integer';
  if (typeof b.username !== 'string') return 'username must be a string';
  for (const k of ['followerCount', 'followingCount']) {
    const v = b[k];
    if (!Number.isSafeInteger(v) || (v as number) < 0) return `${k} must be a non-negative integer`;
  }
  return '';
}

/** Starts a Mockstagram-compatible server; resolves once it listens. */
export async function startMock(options: Partial<MockOptions> = {}): Promise<MockServer> {
  let o = resolveOptions(options);
  const seed = o.seed ?? randomBytes(4).readUInt32LE(0);
  const faultRng = new Random(seed, 1);
  const delayRng = new Random(seed, 2);
  const table = new InfluencerTable(o.count, new Random(seed, 3));
  const pkMax = o.pkMin + o.count - 1;
  // cumulative fault thresholds for one uniform draw per request, and what depends on the options
  let tHang = 0,
    tError = 0,
    tRateLimit = 0,
    tMalformed = 0,
    tBadField = 0;
  let rateLimited = staticReply(429, '{}');
  let delayed = false;
  const applyFaults = (): void => {
    tHang = o.hangRate;
    tError = tHang + o.errorRate;
    tRateLimit = tError + o.rateLimitRate;
    tMalformed = tRateLimit + o.malformedRate;
    tBadField = tMalformed + o.badFieldRate;
    rateLimited = staticReply(429, '{"error":{"name":"TooManyRequests"}}', ['Retry-After', String(o.retryAfterS)]);
    delayed = o.latencyMs > 0 || o.jitterMs > 0;
  };
  applyFaults();
  const timers = new Set<NodeJS.Timeout>();
  let requests = 0;
  let closed = false;

  const later = (ms: number, fn: () => void): void => {
    if (closed) return;
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };
  const latency = (): number => (o.jitterMs > 0 ? o.latencyMs + o.jitterMs * delayRng.next() : o.latencyMs);

  const writeStatic = (res: ServerResponse, r: StaticReply): void => {
    res.writeHead(r.status, r.headers);
    res.end(r.body);
  };
  const writeJson = (res: ServerResponse, status: number, body: string): void => {
    res.writeHead(status, ['Content-Type', JSON_TYPE, 'Content-Length', String(Buffer.byteLength(body))]);
    res.end(body);
  };
  const replyStatic = (res: ServerResponse, r: StaticReply, extraMs = 0): void => {
    const ms = (delayed ? latency() : 0) + extraMs;
    if (ms > 0) later(ms, () => writeStatic(res, r));
    else writeStatic(res, r);
  };
  const replyJson = (res: ServerResponse, status: number, body: string, extraMs = 0): void => {
    const ms = (delayed ? latency() : 0) + extraMs;
    if (ms > 0) later(ms, () => writeJson(res, status, body));
    else writeJson(res, status, body);
  };
  const suspiciousDelay = (): number =>
    o.suspiciousDelayScale > 0 ? Math.max(0, 1000 + 1000 * delayRng.normal()) * o.suspiciousDelayScale : 0;
  const suspiciousBody = (pk: number, f: number, g: number): string =>
    `{"pk":${pk},"suspicious":${isSuspicious(f, g)}}`;

  const influencer = (res: ServerResponse, pk: number): void => {
    const u = faultRng.next();
    if (u < tBadField) {
      if (u < tHang) return; // never answered: close() destroys the socket
      if (u < tError) return replyStatic(res, UNAVAILABLE);
      if (u < tRateLimit) return replyStatic(res, rateLimited);
    }
    table.touch(pk - o.pkMin, true);
    const f = table.followerCount;
    const g = table.followingCount;
    if (u >= tRateLimit && u < tMalformed) {
      const body = `{"pk":${pk},"username":"influencer-${pk}","followerCount":${f},"followingCount":${g}}`;
      return replyJson(res, 200, body.slice(0, 1 + Math.floor(faultRng.next() * (body.length - 1))));
    }
    if (u >= tMalformed && u < tBadField) {
      return replyJson(res, 200, badFieldBody(Math.floor(faultRng.next() * BAD_FIELD_VARIANTS), pk, f, g));
    }
    replyJson(res, 200, `{"pk":${pk},"username":"influencer-${pk}","followerCount":${f},"followingCount":${g}}`);
  };

  const postSuspicious = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => {
      let body: unknown;
      let why = size > MAX_BODY ? `body larger than ${MAX_BODY} bytes` : '';
      if (!why) {
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          why = 'body is not valid JSON';
        }
      }
      if (!why) why = invalidInfluencer(body);
      if (why) return replyJson(res, 400, JSON.stringify({ error: { name: 'BadRequestError', message: why } }));
      const b = body as { pk: number; followerCount: number; followingCount: number };
      replyJson(res, 200, suspiciousBody(b.pk, b.followerCount, b.followingCount), suspiciousDelay());
    });
  };

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    requests++;
    const url = req.url ?? '';
    let end = url.indexOf('?');
    if (end < 0) end = url.length;
    if (req.method === 'POST') {
      if (end === POST_SUSPICIOUS.length && url.startsWith(POST_SUSPICIOUS)) return postSuspicious(req, res);
      return replyStatic(res, NOT_FOUND_PATH);
    }
    if (req.method !== 'GET' || !url.startsWith(PREFIX)) return replyStatic(res, NOT_FOUND_PATH);
    // what follows the prefix is ":pk" or ":pk/is_suspicious"
    let idEnd = url.indexOf('/', PREFIX.length);
    const suspicious = idEnd >= 0 && idEnd < end;
    if (!suspicious) idEnd = end;
    else if (idEnd + SUSPICIOUS.length !== end || !url.startsWith(SUSPICIOUS, idEnd))
      return replyStatic(res, NOT_FOUND_PATH);
    if (idEnd === PREFIX.length) return replyStatic(res, NOT_FOUND_PATH);
    const pk = parsePk(url, PREFIX.length, idEnd);
    if (pk < o.pkMin || pk > pkMax) return replyStatic(res, NOT_FOUND_PK);
    if (!suspicious) return influencer(res, pk);
    table.touch(pk - o.pkMin, false);
    replyJson(res, 200, suspiciousBody(pk, table.followerCount, table.followingCount), suspiciousDelay());
  };

  const server = createServer({ keepAlive: true, noDelay: true, requestTimeout: 0 }, handle);
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  let closing: Promise<void> | undefined;

  return {
    url: `http://${host}:${port}`,
    port,
    stats: () => ({ requests, influencers: table.created }),
    setFaults(faults: MockFaults) {
      o = resolveOptions({ ...o, ...faults });
      applyFaults();
    },
    options: () => ({ ...o }),
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        closed = true;
        for (const t of timers) clearTimeout(t);
        timers.clear();
        server.close(() => resolve());
        server.closeAllConnections(); // hanging, delayed and idle keep-alive sockets alike
      })),
  };
}
