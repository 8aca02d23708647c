// The stored payloads read back exactly what was written (random walks, edge values, off-grid
// times), stay near their target size, and refuse malformed bytes with CorruptData.
import t from 'tap';
import { ByteReader, ByteWriter } from '../../../../lib/storage/format/bytes.js';
import {
  addPoints,
  decodeBucket,
  decodeCheckpoint,
  decodeLog,
  decodeOpen,
  decodeRollup,
  encodeBucket,
  encodeCheckpoint,
  encodeLog,
  encodeRollup,
  MAX_COUNT,
  openRecord,
  summarize,
  type Point,
} from '../../../../lib/storage/format/codec.js';

const MIN = 60_000;
const HOUR = 3_600_000;
const P = 1_764_583_200_000;
const CORRUPT = { name: 'CorruptData' };

function walk(seed: number, n: number, step = 5000): Point[] {
  let s = seed;
  const rand = (): number => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s / 2 ** 31;
  };
  let f = 100_000;
  let g = 1000;
  const out: Point[] = [];
  for (let i = 0; i < n; i++) {
    f = Math.max(0, Math.round(f + (rand() - 0.5) * 2 * step));
    g = Math.max(0, Math.round(g + (rand() - 0.5) * 200));
    out.push({ at: P + i * MIN, f, g });
  }
  return out;
}

t.test('varints, zigzag and bit packing round-trip up to 2^53', async (t) => {
  const values = [0, 1, 127, 128, 300, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 48 + 7, Number.MAX_SAFE_INTEGER];
  const w = new ByteWriter();
  // zigzag doubles: its inputs stay within ±2^51
  const half = (v: number): number => Math.min(v, 2 ** 51);
  for (const v of values) w.varint(v).zigzag(half(v)).zigzag(-half(v));
  w.packed([5, 0, 31, 17], 5).packed([2 ** 40 + 3, 1], 41);
  const r = new ByteReader(w.finish());
  for (const v of values) t.same([r.varint(), r.zigzag(), r.zigzag()], [v, half(v), -half(v)], `${v}`);
  t.same(r.packed(4, 5), [5, 0, 31, 17]);
  t.same(r.packed(2, 41), [2 ** 40 + 3, 1]);
  t.ok(r.done);
  t.throws(() => new ByteWriter().varint(-1), { name: 'RangeError' });
  t.throws(() => new ByteReader(new Uint8Array([0x80, 0x80])).varint(), CORRUPT);
});

t.test('a bucket of one-minute points: exact, about 3 bytes a point', async (t) => {
  const points = walk(7, 60);
  const bytes = encodeBucket(P, MIN, HOUR, points);
  t.same(decodeBucket(P, bytes), points);
  t.ok(bytes.length <= 200, `${bytes.length} bytes for 60 points`);
  // gaps, one point, none, counts at the 32-bit limit
  const gappy = points.filter((_, i) => i % 7 !== 3);
  t.same(decodeBucket(P, encodeBucket(P, MIN, HOUR, gappy)), gappy);
  t.same(decodeBucket(P, encodeBucket(P, MIN, HOUR, [points[5]!])), [points[5]]);
  t.same(decodeBucket(P, encodeBucket(P, MIN, HOUR, [])), []);
  const extreme = [
    { at: P, f: MAX_COUNT, g: 0 },
    { at: P + MIN, f: 0, g: MAX_COUNT },
  ];
  t.same(decodeBucket(P, encodeBucket(P, MIN, HOUR, extreme)), extreme);
  // a point off the interval grid (INTERVAL_MS changed mid-period) is kept with its own time
  const offGrid = [
    { at: P + 1500, f: 1, g: 2 },
    { at: P + MIN, f: 3, g: 4 },
  ];
  t.same(decodeBucket(P, encodeBucket(P, MIN, HOUR, offGrid)), offGrid);
});

t.test('log documents: samples of many pks, sorted, exact', async (t) => {
  const samples = [
    { pk: 1_000_900, at: P + 3 * MIN, f: 5, g: 6 },
    { pk: 1_000_001, at: P + 3 * MIN, f: 1, g: 2 },
    { pk: 1_000_001, at: P + 2 * MIN, f: MAX_COUNT, g: 0, username: 'alice' },
    { pk: 1_999_999, at: P, f: 0, g: 9, username: '' },
  ];
  const decoded = decodeLog(P, encodeLog(P, samples));
  t.same(
    decoded,
    [...samples].sort((a, b) => a.pk - b.pk || a.at - b.at),
  );
  t.same(decodeLog(P, encodeLog(P, [])), []);
});

t.test('open-buffer records as the Lua script appends them, decoded in time order', async (t) => {
  const a = { at: P + 2 * MIN, f: 10, g: 20 };
  const b = { at: P, f: MAX_COUNT, g: 0 };
  t.same(decodeOpen(P, Buffer.concat([openRecord(P, a), openRecord(P, b)])), [b, a]);
  t.throws(() => decodeOpen(P, new Uint8Array(13)), CORRUPT);
});

t.test("rollups keep each bucket's last counts, min, max, sum and samples", async (t) => {
  const day = walk(3, 24 * 60);
  const buckets = [0, 1, 5, 23].map((index) => ({ index, s: summarize(day.slice(index * 60, index * 60 + 60)) }));
  const decoded = decodeRollup(P, encodeRollup(HOUR, buckets));
  t.same(
    decoded,
    buckets.map(({ index, s }) => ({ at: P + index * HOUR, s })),
  );
  t.equal(decoded[0]!.s.n, 60);
});

t.test('checkpoints: totals with usernames and the bucket summaries', async (t) => {
  const points = walk(11, 60);
  const a = addPoints(undefined, 1_000_001, 'alice', points);
  t.match(a, { n: 60, at: points[59]!.at, f: points[59]!.f, pat: points[58]!.at, pf: points[58]!.f });
  const b = addPoints(undefined, 1_000_005, 'bøb ✓', [points[0]!]);
  t.equal(b.pat, -1, 'one point: no previous');
  const end = P + HOUR;
  const { totals, summaries } = decodeCheckpoint(
    end,
    encodeCheckpoint(end, [b, a], new Map([[a.pk, summarize(points)]])),
  );
  t.same(totals, [a, b]);
  t.same([...summaries], [[a.pk, summarize(points)]]);
  // adding an older point later moves neither latest nor previous past a newer one
  const late = addPoints(a, a.pk, '', [{ at: P - MIN, f: 1, g: 1 }]);
  t.match(late, { n: 61, at: a.at, pat: a.pat, min: 1, username: 'alice' });
});

t.test('malformed payloads are refused, not misread', async (t) => {
  const good = encodeBucket(P, MIN, HOUR, walk(1, 10));
  t.throws(() => decodeBucket(P, good.subarray(0, good.length - 3)), CORRUPT, 'truncated');
  t.throws(() => decodeBucket(P, Uint8Array.of(9, 1, 1)), CORRUPT, 'unknown version');
  t.throws(() => decodeLog(P, Uint8Array.of(1, 100)), CORRUPT, 'count past the end');
  t.throws(() => decodeCheckpoint(P, Uint8Array.of(1, 1, 1)), CORRUPT);
  t.throws(() => decodeRollup(P, Uint8Array.of(1, 0, 0)), CORRUPT, 'bucket length 0');
});
