/**
 * The binary payloads of the storage layout (DESIGN.md beside this file). Every format starts with
 * a version byte; times are stored relative to the document's period, so a payload never depends
 * on the settings of the node that reads it. Decoders throw CorruptData on anything malformed.
 */
import { bitWidth, ByteReader, ByteWriter, CorruptData, unzigzag, zigzag } from './bytes.js';

const VERSION = 1;
/** Counts are stored in 32 bits in the open buffers (Redis): larger ones are refused at the source. */
export const MAX_COUNT = 0xffff_ffff;
/** One point in an open buffer: interval offset in the period (ms), followerCount, followingCount. */
export const OPEN_RECORD_BYTES = 12;

export interface Point {
  /** interval start, epoch ms */
  at: number;
  f: number;
  g: number;
}

export interface LogSample extends Point {
  pk: number;
  /** carried the first time a node logs a pk, so a reconcile can name a pk seen only in the log */
  username?: string;
}

/** What a bucket adds to a pk's totals, and what its rollup keeps of it. */
export interface BucketSummary {
  n: number;
  sum: number;
  min: number;
  max: number;
  /** counts of the bucket's last point */
  lastF: number;
  lastG: number;
}

/** A pk's totals over every point before a checkpoint's end. `pat` is -1 while there is one point only. */
export interface PkTotals {
  pk: number;
  n: number;
  sum: number;
  min: number;
  max: number;
  at: number;
  f: number;
  g: number;
  pat: number;
  pf: number;
  username: string;
}

function reader(bytes: Uint8Array, what: string): ByteReader {
  const r = new ByteReader(bytes);
  const v = r.byte();
  if (v !== VERSION) throw new CorruptData(`${what}: unknown format version ${v}`);
  return r;
}

/** A log document: the samples of one write batch in one period, sorted by pk then time, then usernames. */
export function encodeLog(period: number, samples: LogSample[]): Uint8Array {
  const sorted = [...samples].sort((a, b) => a.pk - b.pk || a.at - b.at);
  const w = new ByteWriter().byte(VERSION).varint(sorted.length);
  let pk = 0;
  let offset = 0;
  for (const s of sorted) {
    w.varint(s.pk - pk)
      .zigzag(s.at - period - offset)
      .varint(s.f)
      .varint(s.g);
    pk = s.pk;
    offset = s.at - period;
  }
  const named = sorted.flatMap((s, i) =>
    s.username === undefined ? [] : [[i, new TextEncoder().encode(s.username)] as const],
  );
  w.varint(named.length);
  for (const [i, name] of named) w.varint(i).varint(name.length).bytes(name);
  return w.finish();
}

export function decodeLog(period: number, bytes: Uint8Array): LogSample[] {
  const r = reader(bytes, 'log');
  const count = r.varint();
  if (count > bytes.length) throw new CorruptData('log: count larger than the payload');
  const out: LogSample[] = new Array(count);
  let pk = 0;
  let offset = 0;
  for (let i = 0; i < count; i++) {
    pk += r.varint();
    offset += r.zigzag();
    out[i] = { pk, at: period + offset, f: r.varint(), g: r.varint() };
  }
  const named = r.varint();
  const text = new TextDecoder();
  for (let k = 0; k < named; k++) {
    const sample = out[r.varint()];
    if (!sample) throw new CorruptData('log: username of a sample past the end');
    sample.username = text.decode(r.bytes(r.varint()));
  }
  return out;
}

/** One open-buffer record, as the Lua script appends it (big-endian uint32 × 3). */
export function openRecord(period: number, p: Point): Buffer {
  const b = Buffer.alloc(OPEN_RECORD_BYTES);
  b.writeUInt32BE(p.at - period, 0);
  b.writeUInt32BE(p.f, 4);
  b.writeUInt32BE(p.g, 8);
  return b;
}

/** An open buffer's points, sorted by time (records are appended in arrival order). */
export function decodeOpen(period: number, bytes: Uint8Array): Point[] {
  if (bytes.length % OPEN_RECORD_BYTES !== 0) throw new CorruptData(`open buffer of ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Point[] = [];
  for (let i = 0; i < bytes.length; i += OPEN_RECORD_BYTES) {
    out.push({ at: period + view.getUint32(i), f: view.getUint32(i + 4), g: view.getUint32(i + 8) });
  }
  return out.sort((a, b) => a.at - b.at);
}

/**
 * A bucket: one pk's points of one period. Which intervals are present is a bitmap over the
 * period's slots (or, if a point is off the interval grid, the list of offsets); the counts are the
 * first value and bit-packed zigzag deltas, about 3 bytes a point for a random walk.
 */
export function encodeBucket(period: number, intervalMs: number, bucketMs: number, points: Point[]): Uint8Array {
  const w = new ByteWriter().byte(VERSION).varint(intervalMs).varint(points.length);
  if (points.length === 0) return w.finish();
  const slots = bucketMs / intervalMs;
  const onGrid =
    Number.isInteger(slots) && points.every((p) => (p.at - period) % intervalMs === 0 && p.at - period < bucketMs);
  if (onGrid) {
    const bitmap = new Uint8Array(Math.ceil(slots / 8));
    for (const p of points) {
      const slot = (p.at - period) / intervalMs;
      bitmap[slot >> 3]! |= 1 << (slot & 7);
    }
    w.byte(0).varint(slots).bytes(bitmap);
  } else {
    w.byte(1);
    let offset = 0;
    for (const p of points) {
      w.varint(p.at - period - offset);
      offset = p.at - period;
    }
  }
  column(
    w,
    points.map((p) => p.f),
  );
  column(
    w,
    points.map((p) => p.g),
  );
  return w.finish();
}

export function decodeBucket(period: number, bytes: Uint8Array): Point[] {
  const r = reader(bytes, 'bucket');
  const intervalMs = r.varint();
  const count = r.varint();
  if (count === 0) return [];
  if (intervalMs === 0 || count > bytes.length * 8) throw new CorruptData('bucket: bad header');
  const ats: number[] = [];
  const mode = r.byte();
  if (mode === 0) {
    const slots = r.varint();
    const bitmap = r.bytes(Math.ceil(slots / 8));
    for (let slot = 0; slot < slots && ats.length < count; slot++) {
      if (bitmap[slot >> 3]! & (1 << (slot & 7))) ats.push(period + slot * intervalMs);
    }
  } else if (mode === 1) {
    let offset = 0;
    for (let i = 0; i < count; i++) {
      offset += r.varint();
      ats.push(period + offset);
    }
  } else {
    throw new CorruptData(`bucket: unknown time mode ${mode}`);
  }
  if (ats.length !== count) throw new CorruptData('bucket: bitmap and count differ');
  const fs = readColumn(r, count);
  const gs = readColumn(r, count);
  return ats.map((at, i) => ({ at, f: fs[i]!, g: gs[i]! }));
}

/** First value, then bit-packed zigzag deltas at the width of the largest. */
function column(w: ByteWriter, values: number[]): void {
  w.varint(values[0]!);
  const deltas = values.slice(1).map((v, i) => zigzag(v - values[i]!));
  const width = bitWidth(deltas);
  w.byte(width).packed(deltas, width);
}

function readColumn(r: ByteReader, count: number): number[] {
  const out = [r.varint()];
  const width = r.byte();
  const deltas = r.packed(count - 1, width);
  for (const d of deltas) out.push(out[out.length - 1]! + unzigzag(d));
  return out;
}

/** The summary of a time-ordered, non-empty list of points. */
export function summarize(points: Point[]): BucketSummary {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const p of points) {
    sum += p.f;
    if (p.f < min) min = p.f;
    if (p.f > max) max = p.f;
  }
  const last = points[points.length - 1]!;
  return { n: points.length, sum, min, max, lastF: last.f, lastG: last.g };
}

/** A rollup: the summaries of the buckets of one rollup period, by bucket index. */
export function encodeRollup(bucketMs: number, buckets: Array<{ index: number; s: BucketSummary }>): Uint8Array {
  const sorted = [...buckets].sort((a, b) => a.index - b.index);
  const w = new ByteWriter().byte(VERSION).varint(bucketMs).varint(sorted.length);
  let index = -1;
  let lastF = 0;
  let lastG = 0;
  for (const { index: i, s } of sorted) {
    w.varint(i - index - 1)
      .varint(s.n)
      .zigzag(s.lastF - lastF)
      .zigzag(s.lastG - lastG)
      .varint(s.lastF - s.min)
      .varint(s.max - s.lastF)
      .varint(s.sum - s.n * s.min);
    index = i;
    lastF = s.lastF;
    lastG = s.lastG;
  }
  return w.finish();
}

export function decodeRollup(start: number, bytes: Uint8Array): Array<{ at: number; s: BucketSummary }> {
  const r = reader(bytes, 'rollup');
  const bucketMs = r.varint();
  const count = r.varint();
  if (bucketMs === 0 || count > bytes.length) throw new CorruptData('rollup: bad header');
  const out: Array<{ at: number; s: BucketSummary }> = [];
  let index = -1;
  let lastF = 0;
  let lastG = 0;
  for (let i = 0; i < count; i++) {
    index += r.varint() + 1;
    const n = r.varint();
    lastF += r.zigzag();
    lastG += r.zigzag();
    const min = lastF - r.varint();
    const max = lastF + r.varint();
    const sum = r.varint() + n * min;
    out.push({ at: start + index * bucketMs, s: { n, sum, min, max, lastF, lastG } });
  }
  return out;
}

/**
 * A checkpoint: for every pk of a slice, its totals up to the checkpoint's end, and the summary
 * of the checkpoint's own bucket for the pks that had points in it (the rollup reads those).
 */
export function encodeCheckpoint(
  end: number,
  totals: PkTotals[],
  summaries: ReadonlyMap<number, BucketSummary>,
): Uint8Array {
  const sorted = [...totals].sort((a, b) => a.pk - b.pk);
  const w = new ByteWriter().byte(VERSION).varint(sorted.length);
  const text = new TextEncoder();
  let pk = 0;
  for (const t of sorted) {
    const name = text.encode(t.username);
    w.varint(t.pk - pk)
      .varint(t.n)
      .varint(t.sum)
      .varint(t.min)
      .varint(t.max)
      .varint(end - t.at)
      .varint(t.pat < 0 ? 0 : t.at - t.pat + 1)
      .varint(t.f)
      .varint(t.g)
      .varint(t.pat < 0 ? 0 : t.pf)
      .varint(name.length)
      .bytes(name);
    const s = summaries.get(t.pk);
    if (s) w.varint(s.n).varint(s.sum).varint(s.min).varint(s.max).varint(s.lastF).varint(s.lastG);
    else w.varint(0);
    pk = t.pk;
  }
  return w.finish();
}

export function decodeCheckpoint(
  end: number,
  bytes: Uint8Array,
): { totals: PkTotals[]; summaries: Map<number, BucketSummary> } {
  const r = reader(bytes, 'checkpoint');
  const count = r.varint();
  if (count > bytes.length) throw new CorruptData('checkpoint: count larger than the payload');
  const text = new TextDecoder();
  const totals: PkTotals[] = [];
  const summaries = new Map<number, BucketSummary>();
  let pk = 0;
  for (let i = 0; i < count; i++) {
    pk += r.varint();
    const n = r.varint();
    const sum = r.varint();
    const min = r.varint();
    const max = r.varint();
    const at = end - r.varint();
    const back = r.varint();
    const f = r.varint();
    const g = r.varint();
    const pf = r.varint();
    const username = text.decode(r.bytes(r.varint()));
    totals.push({ pk, n, sum, min, max, at, f, g, pat: back === 0 ? -1 : at - back + 1, pf, username });
    const sn = r.varint();
    if (sn > 0)
      summaries.set(pk, {
        n: sn,
        sum: r.varint(),
        min: r.varint(),
        max: r.varint(),
        lastF: r.varint(),
        lastG: r.varint(),
      });
  }
  return { totals, summaries };
}

/** A copy of a pk's totals (or new ones) with points added: latest and previous move forward only. */
export function addPoints(t: PkTotals | undefined, pk: number, username: string, points: Point[]): PkTotals {
  const out: PkTotals = t ? { ...t } : emptyTotals(pk, username);
  if (username) out.username = username;
  for (const p of points) addPoint(out, p);
  return out;
}

export function emptyTotals(pk: number, username = ''): PkTotals {
  return { pk, n: 0, sum: 0, min: Infinity, max: -Infinity, at: -1, f: 0, g: 0, pat: -1, pf: 0, username };
}

/** Adds one point to totals in place ("previous" is the newest point before the latest). */
export function addPoint(t: PkTotals, p: Point): void {
  t.n++;
  t.sum += p.f;
  if (p.f < t.min) t.min = p.f;
  if (p.f > t.max) t.max = p.f;
  if (p.at > t.at) {
    if (t.at >= 0) {
      t.pat = t.at;
      t.pf = t.f;
    }
    t.at = p.at;
    t.f = p.f;
    t.g = p.g;
  } else if (p.at < t.at && p.at > t.pat) {
    t.pat = p.at;
    t.pf = p.f;
  }
}

/** A pk's running totals in Redis (the slice's totals hash): big-endian, as apply.lua packs them ('>dI4I4I4dI4I4dI4'). */
export const PACKED_TOTALS_BYTES = 48;

/** The running totals of `t` as the Lua scripts store them (the username is kept apart). */
export function packTotals(t: PkTotals): Buffer {
  const b = Buffer.alloc(PACKED_TOTALS_BYTES);
  b.writeDoubleBE(t.at, 0);
  b.writeUInt32BE(t.f, 8);
  b.writeUInt32BE(t.g, 12);
  b.writeUInt32BE(t.n, 16);
  b.writeDoubleBE(t.sum, 20);
  b.writeUInt32BE(t.min, 28);
  b.writeUInt32BE(t.max, 32);
  b.writeDoubleBE(t.pat, 36);
  b.writeUInt32BE(t.pf, 44);
  return b;
}

/** Running totals packed by `packTotals` or a Lua script; throws CorruptData on another length. */
export function unpackTotals(pk: number, b: Uint8Array, username = ''): PkTotals {
  if (b.length !== PACKED_TOTALS_BYTES) throw new CorruptData(`packed totals of pk ${pk}: ${b.length} bytes`);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    pk,
    at: v.getFloat64(0),
    f: v.getUint32(8),
    g: v.getUint32(12),
    n: v.getUint32(16),
    sum: v.getFloat64(20),
    min: v.getUint32(28),
    max: v.getUint32(32),
    pat: v.getFloat64(36),
    pf: v.getUint32(44),
    username,
  };
}

/** One sample as an apply call takes it: pk (double), interval offset in the period, followerCount, followingCount. */
export const PACKED_SAMPLE_BYTES = 20;

/**
 * Most samples one apply call takes: about 60 ms of Redis at 6 µs a sample (a longer script holds
 * every other client of that master), and three arguments a sample, well under what one call's
 * arguments may be (a call of 60,000 samples with usernames overflowed Node's stack here).
 * FLUSH_MAX_SAMPLES is bounded by it; a larger document (an older setting) is applied in parts.
 */
export const MAX_APPLY_SAMPLES = 10_000;

/** Samples of one period packed for apply.lua, in order. */
export function packSamples(
  period: number,
  samples: ReadonlyArray<{ pk: number; at: number; f: number; g: number }>,
): Buffer {
  const b = Buffer.alloc(samples.length * PACKED_SAMPLE_BYTES);
  samples.forEach((s, i) => {
    const o = i * PACKED_SAMPLE_BYTES;
    b.writeDoubleBE(s.pk, o);
    b.writeUInt32BE(s.at - period, o + 8);
    b.writeUInt32BE(s.f, o + 12);
    b.writeUInt32BE(s.g, o + 16);
  });
  return b;
}
