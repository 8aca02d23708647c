import crypto from 'node:crypto';

export const DEFAULT_PK_MIN = 1_000_000;
export const DEFAULT_PK_MAX = 1_999_999;
/** Largest universe: the pk offset is packed into the low 21 bits of an exact float64 sort key. */
export const MAX_UNIVERSE = 2 ** 21;

export type HashMethod = 'hash' | 'createHash';

/** `crypto.hash` (Node >= 20.12) is one native call per pk; createHash is ~4x slower. */
export const HAS_ONE_SHOT_HASH = typeof (crypto as { hash?: unknown }).hash === 'function';

/**
 * hashring's hashValue of a pk: md5 of its decimal string, first 4 bytes read little-endian
 * (hashValueHash(x[3], x[2], x[1], x[0])), as an unsigned 32-bit integer.
 */
export function hashPk(pk: number, method: HashMethod = HAS_ONE_SHOT_HASH ? 'hash' : 'createHash'): number {
  if (method === 'hash') {
    // 'binary' (latin1) output: one char per byte, no Buffer allocation (measured fastest of buffer/hex/latin1).
    const d = crypto.hash('md5', String(pk), 'binary');
    return (d.charCodeAt(0) | (d.charCodeAt(1) << 8) | (d.charCodeAt(2) << 16) | (d.charCodeAt(3) << 24)) >>> 0;
  }
  return crypto.createHash('md5').update(String(pk)).digest().readUInt32LE(0);
}

/**
 * A pk as a reader typed it (the read API's path, `show`'s argument), or why it is not one: a decimal
 * integer of at most 16 digits (so it is exact as a number) in pkMin..pkMax.
 */
export function parsePk(raw: string | undefined, pkMin: number, pkMax: number): { pk: number } | { error: string } {
  const pk = Number(raw);
  if (raw === undefined || !/^\d{1,16}$/.test(raw) || pk < pkMin || pk > pkMax) {
    return { error: `pk ${JSON.stringify(raw)} is not valid: expected an integer from ${pkMin} to ${pkMax}` };
  }
  return { pk };
}

/** Hash of every pk in pkMin..pkMax, indexed by pk - pkMin. */
export function hashRange(pkMin: number, pkMax: number, method?: HashMethod): Uint32Array {
  const size = checkRange(pkMin, pkMax);
  const hashes = new Uint32Array(size);
  for (let i = 0; i < size; i++) hashes[i] = hashPk(pkMin + i, method);
  return hashes;
}

/** Sort a range's pks by hash (ties by pk): one native float64 sort of hash * 2^21 + offset. */
export function sortByHash(hashes: Uint32Array, pkMin: number): { sortedHashes: Uint32Array; sortedPks: Int32Array } {
  const size = hashes.length;
  if (size > MAX_UNIVERSE) throw new RangeError(`at most ${MAX_UNIVERSE} pks, got ${size}`);
  const keys = new Float64Array(size);
  for (let i = 0; i < size; i++) keys[i] = hashes[i]! * MAX_UNIVERSE + i; // < 2^53: exact
  keys.sort();
  const sortedHashes = new Uint32Array(size);
  const sortedPks = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const key = keys[i]!;
    const hash = Math.floor(key / MAX_UNIVERSE);
    sortedHashes[i] = hash;
    sortedPks[i] = pkMin + (key - hash * MAX_UNIVERSE);
  }
  return { sortedHashes, sortedPks };
}

/**
 * Every tracked pk, hashed once and kept sorted by hash (8 bytes per pk), so ownership is a
 * walk of two sorted arrays instead of a million ring lookups.
 */
export class PkUniverse {
  readonly pkMin: number;
  readonly pkMax: number;
  readonly size: number;
  /** Hashes ascending. */
  readonly sortedHashes: Uint32Array;
  /** pk at each sorted position. */
  readonly sortedPks: Int32Array;
  /** Build cost, for logs and benchmarks. */
  readonly hashMs: number;
  readonly sortMs: number;

  constructor(pkMin: number = DEFAULT_PK_MIN, pkMax: number = DEFAULT_PK_MAX, method?: HashMethod) {
    this.size = checkRange(pkMin, pkMax);
    this.pkMin = pkMin;
    this.pkMax = pkMax;
    const t0 = performance.now();
    const hashes = hashRange(pkMin, pkMax, method);
    const t1 = performance.now();
    const { sortedHashes, sortedPks } = sortByHash(hashes, pkMin);
    this.sortedHashes = sortedHashes;
    this.sortedPks = sortedPks;
    this.hashMs = t1 - t0;
    this.sortMs = performance.now() - t1;
  }

  has(pk: number): boolean {
    return Number.isInteger(pk) && pk >= this.pkMin && pk <= this.pkMax;
  }
}

function checkRange(pkMin: number, pkMax: number): number {
  const int32 = (v: number) => Number.isInteger(v) && v >= -(2 ** 31) && v < 2 ** 31;
  if (!int32(pkMin) || !int32(pkMax)) {
    throw new RangeError(`pk range must be 32-bit integers, got ${pkMin}..${pkMax}`);
  }
  if (pkMax < pkMin) throw new RangeError(`pk range is empty: ${pkMin}..${pkMax}`);
  const size = pkMax - pkMin + 1;
  if (size > MAX_UNIVERSE) {
    throw new RangeError(`pk range ${pkMin}..${pkMax} holds ${size} pks; at most ${MAX_UNIVERSE} (2^21) are supported`);
  }
  return size;
}
