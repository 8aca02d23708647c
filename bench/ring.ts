import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { Ring, VNODES_PER_WEIGHT, type RingMember } from '../lib/ring/ring.js';
import { DEFAULT_PK_MAX, DEFAULT_PK_MIN, PkUniverse, hashRange, sortByHash } from '../lib/ring/pk-universe.js';
import { NO_OWNER, diff, ownedBy, ownedCounts, sweep } from '../lib/ring/ownership.js';

const RUNS = 7;
const equal = (ids: string[]): RingMember[] => ids.map((id) => ({ id, weight: 1 }));
const seqIds = (n: number, prefix = 'node-') => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
const randomIds = (n: number) =>
  Array.from({ length: n }, (_, i) => crypto.createHash('sha1').update(`bench-${i}`).digest('hex').slice(0, 10));
const round = (v: number, digits = 1) => Number(v.toFixed(digits));
const median = (xs: number[]) => round(xs.slice().sort((a, b) => a - b)[xs.length >> 1]!);

function timed<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const result = fn();
  return [result, performance.now() - t0];
}

/**
 * One ownership recompute as the tracker does it when member n joins: ring build, sweep,
 * ownedBy(self), diff against the previous owned set. `warm`: the old members' vnode digests
 * are memoised from the previous ring (what a running node sees); `cold`: every id is new.
 */
function recompute(universe: PkUniverse, n: number) {
  const result: Record<string, unknown> = { members: n, points: n * VNODES_PER_WEIGHT * 4 };
  for (const mode of ['warm', 'cold'] as const) {
    const build: number[] = [];
    const sweepMs: number[] = [];
    const owned: number[] = [];
    const diffMs: number[] = [];
    const total: number[] = [];
    for (let run = 0; run < RUNS; run++) {
      const old = mode === 'warm' ? seqIds(n - 1) : seqIds(n - 1, `cold${run}-`);
      const self = old[0] ?? `joiner-${run}`;
      const previous = () => ownedBy(universe, new Ring(equal(old)), self);
      // warm: the previous ring memoised the old members' digests; cold: built after the timed ring
      let prev = mode === 'warm' ? previous() : undefined;
      const [ring, b] = timed(() => new Ring(equal([...old, `joiner-${mode}-${run}`])));
      prev ??= previous();
      const [, s] = timed(() => sweep(universe, ring));
      const [next, o] = timed(() => ownedBy(universe, ring, self));
      const [, d] = timed(() => diff(prev.pks, next.pks));
      build.push(b);
      sweepMs.push(s);
      owned.push(o);
      diffMs.push(d);
      total.push(b + s + o + d);
    }
    result[mode] = {
      buildMs: median(build),
      sweepMs: median(sweepMs),
      ownedByMs: median(owned),
      diffMs: median(diffMs),
      totalMs: median(total),
    };
  }
  return result;
}

function shareSpread(universe: PkUniverse) {
  const sets = { 'node-i': seqIds(32), random: randomIds(32) };
  const out: Record<string, unknown> = {};
  let worstMin = Infinity;
  let worstMax = -Infinity;
  for (const [name, ids] of Object.entries(sets)) {
    const rows: { n: number; min: number; max: number }[] = [];
    for (let n = 2; n <= 32; n++) {
      const counts = ownedCounts(universe, new Ring(equal(ids.slice(0, n))));
      const fair = universe.size / n;
      const min = Math.min(...counts) / fair;
      const max = Math.max(...counts) / fair;
      worstMin = Math.min(worstMin, min);
      worstMax = Math.max(worstMax, max);
      rows.push({ n, min: round(min, 3), max: round(max, 3) });
    }
    out[name] = rows;
  }
  return {
    worstMin: round(worstMin, 3),
    worstMax: round(worstMax, 3),
    withinTenPercent: worstMin >= 0.9 && worstMax <= 1.1,
    ...out,
  };
}

/** Owner of every sorted position as an index into `ids`. */
function owners(universe: PkUniverse, ring: Ring, ids: string[]): Uint16Array {
  const toShared = ring.ids.map((id) => ids.indexOf(id));
  return sweep(universe, ring).map((o) => (o === NO_OWNER ? NO_OWNER : toShared[o]!));
}

function joins(universe: PkUniverse) {
  const rows: { n: number; moved: number; ratio: number; onlyToJoiner: boolean }[] = [];
  for (let n = 1; n <= 8; n++) {
    const all = seqIds(n + 1);
    const before = owners(universe, new Ring(equal(all.slice(0, n))), all);
    const after = owners(universe, new Ring(equal(all)), all);
    let moved = 0;
    let elsewhere = 0;
    for (let i = 0; i < universe.size; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      if (after[i] !== n) elsewhere++;
    }
    rows.push({ n, moved, ratio: round(moved / universe.size / (1 / (n + 1)), 3), onlyToJoiner: elsewhere === 0 });
  }
  return rows;
}

function leaves(universe: PkUniverse) {
  const rows: { n: number; leaver: string; leaverPks: number; moved: number; onlyLeaversPks: boolean }[] = [];
  for (const n of [2, 5, 8]) {
    const ids = seqIds(n);
    const before = owners(universe, new Ring(equal(ids)), ids);
    const leaver = ids.length >> 1;
    const after = owners(universe, new Ring(equal(ids.filter((_, i) => i !== leaver))), ids);
    let had = 0;
    let moved = 0;
    let others = 0;
    for (let i = 0; i < universe.size; i++) {
      if (before[i] === leaver) had++;
      if (before[i] === after[i]) continue;
      moved++;
      if (before[i] !== leaver) others++;
    }
    rows.push({ n, leaver: ids[leaver]!, leaverPks: had, moved, onlyLeaversPks: others === 0 && moved === had });
  }
  return rows;
}

export async function benchRing(): Promise<object> {
  const pkMin = DEFAULT_PK_MIN;
  const pkMax = DEFAULT_PK_MAX;
  const [hashes, hashMs] = timed(() => hashRange(pkMin, pkMax, 'hash'));
  const [, createHashMs] = timed(() => hashRange(pkMin, pkMax, 'createHash'));
  const [, sortMs] = timed(() => sortByHash(hashes, pkMin));
  const universe = new PkUniverse(pkMin, pkMax);
  return {
    node: process.version,
    vnodesPerWeight: VNODES_PER_WEIGHT,
    universe: {
      pks: universe.size,
      hashMs: { cryptoHash: round(hashMs), createHash: round(createHashMs) },
      sortMs: round(sortMs),
      bytesPerPk: universe.sortedHashes.BYTES_PER_ELEMENT + universe.sortedPks.BYTES_PER_ELEMENT,
    },
    recompute: [recompute(universe, 3), recompute(universe, 32)],
    shareSpread: shareSpread(universe),
    joinMoveRatio: joins(universe),
    leave: leaves(universe),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await benchRing(), null, 2));
}
