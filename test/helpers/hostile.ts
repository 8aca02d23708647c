// A Mockstagram gone wrong, for the property tests: generated answers (fast-check arbitraries) of
// every broken kind, an HTTP server that serves them, and the oracle saying which ones a client may
// take: a 200 whose JSON is the pk asked for, a username and integer counts 0..2^32-1.
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';

/** What a stored point holds (lib/polling/answer.ts), written out again: the oracle does not trust the code it checks. */
export const MAX_COUNT = 2 ** 32 - 1;

/** One answer of the server: what it sends, and how. */
export type Reply =
  /** a JSON body (any value, valid or not) with a status */
  | { kind: 'json'; status: number; body: unknown }
  /** a body that is not JSON: truncated, random text, an HTML page */
  | { kind: 'raw'; status: number; contentType: string; text: string }
  /** megabytes, with or without a content-length */
  | { kind: 'big'; bytes: number; declared: boolean }
  /** a redirect to an answer that would be valid: Mockstagram never redirects */
  | { kind: 'redirect'; status: 301 | 302 | 303 | 307 | 308 }
  /** a body sent one byte every `everyMs` */
  | { kind: 'trickle'; body: unknown; everyMs: number }
  /** a content-length the body never reaches: the connection is cut */
  | { kind: 'cut'; body: unknown };

const validCount = fc.integer({ min: 0, max: MAX_COUNT });

/** Counts of every kind: valid, negative, fractional, huge, of the wrong type. */
export const anyCount: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: validCount, weight: 12 },
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: -1 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
  fc.integer({ min: MAX_COUNT + 1, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(2 ** 32, 2 ** 53, 2 ** 64, 1e300, -0, 0.5, -1),
  fc.string({ maxLength: 12 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.nat(), { maxLength: 3 }),
);

/** An influencer payload for `pk` with each field valid, wrong, or missing. */
export function payload(pk: number): fc.Arbitrary<unknown> {
  const fields = fc.record(
    {
      pk: fc.oneof(
        { arbitrary: fc.constant(pk), weight: 12 },
        fc.integer(),
        fc.constant(String(pk)),
        fc.constant(null),
      ),
      username: fc.oneof(
        { arbitrary: fc.string({ minLength: 1, maxLength: 40 }), weight: 12 },
        fc.constant(''),
        fc.string({ minLength: 257, maxLength: 300 }),
        fc.integer(),
      ),
      followerCount: anyCount,
      followingCount: anyCount,
    },
    { requiredKeys: [] },
  );
  return fc.oneof({ arbitrary: fields, weight: 12 }, fc.jsonValue({ maxDepth: 3 }));
}

const statuses = fc.oneof(
  { arbitrary: fc.constant(200), weight: 16 },
  fc.constantFrom(201, 204, 400, 404, 429, 500, 502, 503),
  fc.integer({ min: 200, max: 599 }),
);

const html = fc.string({ maxLength: 60 }).map((s) => `<!doctype html><html><body><h1>Oops</h1>${s}</body></html>`);

/** Every broken kind of answer for `pk`, and sometimes a valid one. */
export function reply(pk: number, o: { trickle?: boolean } = {}): fc.Arbitrary<Reply> {
  const kinds: Array<fc.WeightedArbitrary<Reply>> = [
    { arbitrary: fc.record({ kind: fc.constant('json'), status: statuses, body: payload(pk) }), weight: 16 },
    {
      arbitrary: fc.record({
        kind: fc.constant('raw'),
        status: statuses,
        contentType: fc.constantFrom('application/json', 'text/html'),
        text: fc.oneof(
          html,
          fc.string({ maxLength: 80 }),
          payloadText(pk).map((t) => t.slice(0, t.length - 1)),
        ),
      }),
      weight: 3,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant('big'),
        bytes: fc.integer({ min: 64 * 1024 + 1, max: 4 * 1024 * 1024 }),
        declared: fc.boolean(),
      }),
      weight: 1,
    },
    {
      arbitrary: fc.record({ kind: fc.constant('redirect'), status: fc.constantFrom(301, 302, 303, 307, 308) }),
      weight: 1,
    },
    { arbitrary: fc.record({ kind: fc.constant('cut'), body: payload(pk) }), weight: 1 },
  ];
  if (o.trickle) {
    const everyMs = fc.constant(1000);
    kinds.push({ arbitrary: fc.record({ kind: fc.constant('trickle'), body: payload(pk), everyMs }), weight: 1 });
  }
  return fc.oneof(...kinds) as fc.Arbitrary<Reply>;
}

/** A valid answer for `pk`. */
export function validReply(pk: number): fc.Arbitrary<Reply> {
  const body = fc.record({
    pk: fc.constant(pk),
    username: fc.string({ minLength: 1, maxLength: 40 }),
    followerCount: validCount,
    followingCount: validCount,
  });
  return fc.record({ kind: fc.constant('json' as const), status: fc.constant(200), body });
}

function payloadText(pk: number): fc.Arbitrary<string> {
  return payload(pk).map((b) => JSON.stringify(b) ?? 'null');
}

/** Whether a parsed body is an answer a client may store for `pk`. */
export function validBody(pk: number, b: unknown): b is { followerCount: number; followingCount: number } {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) return false;
  const r = b as Record<string, unknown>;
  const count = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_COUNT;
  const name = r.username;
  return (
    r.pk === pk &&
    typeof name === 'string' &&
    name.length >= 1 &&
    name.length <= 256 &&
    count(r.followerCount) &&
    count(r.followingCount)
  );
}

/** The counts a client may take from this answer, or undefined when it must refuse it. */
export function accepted(pk: number, r: Reply): { followerCount: number; followingCount: number } | undefined {
  if (r.kind !== 'json' || r.status !== 200) return undefined;
  const text = JSON.stringify(r.body);
  if (text === undefined) return undefined;
  const b = JSON.parse(text) as unknown;
  return validBody(pk, b) ? { followerCount: b.followerCount, followingCount: b.followingCount } : undefined;
}

/** Whether the answer says the pk is unknown (Mockstagram's not-found body on 400, 404 or 500). */
export function notFound(r: Reply): boolean {
  if (r.kind !== 'json' || ![400, 404, 500].includes(r.status)) return false;
  const e = (r.body as { error?: { name?: unknown } } | null)?.error;
  return typeof e === 'object' && e !== null && e.name === 'InfluencerNotFoundError';
}

export interface HostileServer {
  url: string;
  /** bytes written, all answers together */
  bytes: () => number;
  close(): Promise<void>;
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');

/** Serves `next(pk)` for every GET of /api/v1/influencers/<pk>; a redirect target serves a valid answer. */
export async function hostileServer(next: (pk: number) => Reply): Promise<HostileServer> {
  let bytes = 0;
  const timers = new Set<NodeJS.Timeout>();
  const server = createServer((req, res) => {
    res.on('error', () => undefined);
    const m = /^\/(moved\/)?api\/v1\/influencers\/(\d+)$/.exec(req.url ?? '');
    if (!m) return void res.writeHead(404).end();
    const pk = Number(m[2]);
    if (m[1])
      return send(
        res,
        200,
        'application/json',
        JSON.stringify({ pk, username: 'moved', followerCount: 1, followingCount: 1 }),
      );
    const r = next(pk);
    switch (r.kind) {
      case 'json':
        return send(res, r.status, 'application/json', JSON.stringify(r.body) ?? '');
      case 'raw':
        return send(res, r.status, r.contentType, r.text);
      case 'redirect':
        res.writeHead(r.status, { location: `/moved/api/v1/influencers/${pk}` }).end();
        return;
      case 'cut': {
        const text = JSON.stringify(r.body) ?? '';
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': text.length + 100 });
        res.write(text);
        bytes += text.length;
        setImmediate(() => res.destroy());
        return;
      }
      case 'big':
        return sendBig(res, r.bytes, r.declared, (n) => (bytes += n));
      case 'trickle':
        return trickle(res, Buffer.from(JSON.stringify(r.body) ?? ''), r.everyMs, timers, () => bytes++);
    }
  });
  function send(res: ServerResponse, status: number, type: string, text: string): void {
    bytes += Buffer.byteLength(text);
    res.writeHead(status, { 'content-type': type }).end(text);
  }
  server.keepAliveTimeout = 10_000;
  // a client that hangs up mid-answer is what these tests do
  server.on('connection', (socket) => socket.on('error', () => undefined));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bytes: () => bytes,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of timers) clearTimeout(t);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Writes `total` bytes of a JSON-looking body in 64 KiB chunks, as fast as the client reads them. */
function sendBig(res: ServerResponse, total: number, declared: boolean, count: (n: number) => void): void {
  res.writeHead(200, { 'content-type': 'application/json', ...(declared ? { 'content-length': total } : {}) });
  let left = total;
  const more = (): void => {
    while (left > 0 && !res.destroyed) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      count(n);
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void res.once('drain', more);
    }
    if (left === 0) res.end();
  };
  more();
}

/** Writes `body` one byte every `everyMs` until it is all sent or the client has gone. */
function trickle(
  res: ServerResponse,
  body: Buffer,
  everyMs: number,
  timers: Set<NodeJS.Timeout>,
  sent: () => void,
): void {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
  let i = 0;
  const step = (): void => {
    if (res.destroyed) return;
    res.write(body.subarray(i, i + 1));
    sent();
    if (++i >= body.length) return void res.end();
    const timer = setTimeout(() => {
      timers.delete(timer);
      step();
    }, everyMs);
    timers.add(timer);
  };
  step();
}
