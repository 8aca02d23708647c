import { EventEmitter } from 'node:events';
import type { PkUniverse } from './pk-universe.js';
import { normalizeMembers, Ring, type RingMember } from './ring.js';
import { lowerBound, upperBound } from '../shared/util.js';

/** Owner index of a pk when the ring is empty (never a member index: rings hold < 0xffff members). */
export const NO_OWNER = 0xffff;

/** A node's pks, sorted by hash ascending (hash / 2^32 is the pk's offset within the minute). */
export interface OwnedSet {
  pks: Int32Array;
  hashes: Uint32Array;
}

export interface OwnershipDiff {
  gained: Int32Array;
  lost: Int32Array;
}

/**
 * For each point i, the number of sorted pk hashes <= points[i]. Arc i (i >= 1) is then the sorted
 * positions [ends[i-1], ends[i]); arc 0 is [0, ends[0]) plus the wrap-around [ends[last], size).
 * A pk belongs to the first point whose value is >= its hash (hashring's find), ties to the first point.
 */
function arcEnds(universe: PkUniverse, ring: Ring): Uint32Array {
  const hashes = universe.sortedHashes;
  const points = ring.points;
  const ends = new Uint32Array(points.length);
  const n = hashes.length;
  let lo = 0;
  for (let i = 0; i < points.length; i++) {
    const p = points[i]!;
    // Gallop from the previous end (ends are ~size/points apart), then binary-search the bracket.
    let step = 16;
    let hi = lo;
    while (hi < n && hashes[hi]! <= p) {
      lo = hi + 1;
      hi += step;
      step *= 2;
    }
    if (hi > n) hi = n;
    lo = upperBound(hashes, p, lo, hi);
    ends[i] = lo;
  }
  return ends;
}

/** Owner index (into ring.members) of the pk at every sorted position of the universe. */
export function sweep(universe: PkUniverse, ring: Ring): Uint16Array {
  const owners = new Uint16Array(universe.size);
  const points = ring.points.length;
  if (points === 0) return owners.fill(NO_OWNER);
  const ends = arcEnds(universe, ring);
  const first = ring.pointOwner[0]!;
  owners.fill(first, 0, ends[0]);
  for (let i = 1; i < points; i++) owners.fill(ring.pointOwner[i]!, ends[i - 1], ends[i]);
  owners.fill(first, ends[points - 1]);
  return owners;
}

/** Number of pks each member owns, same order as ring.members. */
export function ownedCounts(universe: PkUniverse, ring: Ring): Uint32Array {
  const counts = new Uint32Array(ring.members.length);
  const points = ring.points.length;
  if (points === 0) return counts;
  const ends = arcEnds(universe, ring);
  counts[ring.pointOwner[0]!] += ends[0]! + (universe.size - ends[points - 1]!);
  for (let i = 1; i < points; i++) counts[ring.pointOwner[i]!] += ends[i]! - ends[i - 1]!;
  return counts;
}

/** The pks (and their hashes) that `id` owns on `ring`, sorted by hash ascending. */
export function ownedBy(universe: PkUniverse, ring: Ring, id: string): OwnedSet {
  const self = ring.indexOf(id);
  const points = ring.points.length;
  if (self < 0 || points === 0) return { pks: new Int32Array(0), hashes: new Uint32Array(0) };
  const ends = arcEnds(universe, ring);
  // Sorted-position ranges [start, end) of self's arcs, ascending, adjacent arcs merged.
  const ranges: number[] = [];
  const add = (start: number, end: number) => {
    if (end <= start) return;
    if (ranges.length > 0 && ranges[ranges.length - 1] === start) ranges[ranges.length - 1] = end;
    else ranges.push(start, end);
  };
  const ownsFirst = ring.pointOwner[0] === self;
  if (ownsFirst) add(0, ends[0]!);
  for (let i = 1; i < points; i++) if (ring.pointOwner[i] === self) add(ends[i - 1]!, ends[i]!);
  if (ownsFirst) add(ends[points - 1]!, universe.size);

  let total = 0;
  for (let r = 0; r < ranges.length; r += 2) total += ranges[r + 1]! - ranges[r]!;
  const pks = new Int32Array(total);
  const hashes = new Uint32Array(total);
  let at = 0;
  for (let r = 0; r < ranges.length; r += 2) {
    const start = ranges[r]!;
    const end = ranges[r + 1]!;
    pks.set(universe.sortedPks.subarray(start, end), at);
    hashes.set(universe.sortedHashes.subarray(start, end), at);
    at += end - start;
  }
  return { pks, hashes };
}

/**
 * Exact set difference of two pk sets (each without repeats): `gained` = in next only, in next's
 * order; `lost` = in prev only, in prev's order. A byte map over the pk span, or sorted copies
 * when the span is sparse.
 */
export function diff(prevPks: Int32Array, nextPks: Int32Array): OwnershipDiff {
  if (prevPks.length === 0 || nextPks.length === 0) {
    return { gained: nextPks.slice(), lost: prevPks.slice() };
  }
  let min = Infinity;
  let max = -Infinity;
  for (const a of [prevPks, nextPks]) {
    for (let i = 0; i < a.length; i++) {
      const v = a[i]!;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  const span = max - min + 1;
  if (span <= 4 * (prevPks.length + nextPks.length) + 2 ** 21) {
    const mark = new Uint8Array(span);
    for (let i = 0; i < prevPks.length; i++) mark[prevPks[i]! - min] = 1;
    for (let i = 0; i < nextPks.length; i++) mark[nextPks[i]! - min]! |= 2;
    return { gained: selectMarked(nextPks, mark, min, 2), lost: selectMarked(prevPks, mark, min, 1) };
  }
  const prevSorted = prevPks.slice().sort();
  const nextSorted = nextPks.slice().sort();
  return {
    gained: nextPks.filter((pk) => !sortedHas(prevSorted, pk)),
    lost: prevPks.filter((pk) => !sortedHas(nextSorted, pk)),
  };
}

/** The pks whose mark is exactly `want`, in input order (a counted loop: typed-array filter is ~10x slower). */
function selectMarked(pks: Int32Array, mark: Uint8Array, min: number, want: number): Int32Array {
  let count = 0;
  for (let i = 0; i < pks.length; i++) if (mark[pks[i]! - min] === want) count++;
  const out = new Int32Array(count);
  for (let i = 0, k = 0; k < count; i++) if (mark[pks[i]! - min] === want) out[k++] = pks[i]!;
  return out;
}

function sortedHas(sorted: Int32Array, pk: number): boolean {
  const i = lowerBound(sorted, pk);
  return i < sorted.length && sorted[i] === pk;
}

export interface OwnershipChange extends OwnershipDiff {
  /**
   * The gained pks that had no live owner before this change: their owner has left the ring, or the
   * ring was empty. The others' last owner is still a member and polled them until it saw the change.
   */
  orphaned: Int32Array;
  owned: OwnedSet;
  members: readonly RingMember[];
  /** Wall time of the recompute (ring build, extraction, diff). */
  ms: number;
}

export interface OwnershipTrackerOptions {
  /** At most one recompute per this many ms; calls in between coalesce into one trailing run. */
  minIntervalMs?: number;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

/**
 * This node's share of the universe as the member list changes. Emits 'change' with what was
 * gained and lost (only when something moved) and 'ring' with the new ring after every
 * recompute; rate-limited so a burst of membership events costs one recompute.
 */
export class OwnershipTracker extends EventEmitter<{ change: [OwnershipChange]; ring: [Ring]; error: [Error] }> {
  readonly universe: PkUniverse;
  readonly selfId: string;
  /** Number of recomputes done (unchanged member lists do not count). */
  recomputes = 0;

  readonly #minIntervalMs: number;
  readonly #now: () => number;
  readonly #setTimer: (fn: () => void, ms: number) => unknown;
  readonly #clearTimer: (handle: unknown) => void;
  #ring = new Ring([]);
  #owned: OwnedSet = { pks: new Int32Array(0), hashes: new Uint32Array(0) };
  #key = '[]';
  #pending: RingMember[] | undefined;
  #lastRun: number | undefined;
  #timer: unknown;
  #closed = false;

  constructor(universe: PkUniverse, selfId: string, options: OwnershipTrackerOptions = {}) {
    super();
    this.universe = universe;
    this.selfId = selfId;
    this.#minIntervalMs = options.minIntervalMs ?? 1000;
    this.#now = options.now ?? Date.now;
    this.#setTimer = options.setTimer ?? setTimeout;
    this.#clearTimer = options.clearTimer ?? ((h) => clearTimeout(h as NodeJS.Timeout));
  }

  /** Report the live member list; throws at once on a bad list (bad weight, duplicate id). */
  setMembers(members: readonly RingMember[]): void {
    const normalized = normalizeMembers(members);
    if (this.#closed) return;
    this.#pending = normalized;
    if (this.#timer !== undefined) return; // the trailing run takes the latest list
    const wait = this.#lastRun === undefined ? 0 : this.#lastRun + this.#minIntervalMs - this.#now();
    if (wait <= 0) {
      this.#recompute();
      return;
    }
    this.#timer = this.#setTimer(() => {
      this.#timer = undefined;
      try {
        this.#recompute();
      } catch (err) {
        this.emit('error', err instanceof Error ? err : new Error(String(err)));
      }
    }, wait);
  }

  /** The pks this node owns now, sorted by hash. */
  owned(): OwnedSet {
    return this.#owned;
  }

  /** The ring of the last recompute (empty before the first). */
  ring(): Ring {
    return this.#ring;
  }

  /** Stops recomputing: a pending recompute is dropped. */
  stop(): void {
    this.#closed = true;
    this.#pending = undefined;
    if (this.#timer !== undefined) this.#clearTimer(this.#timer);
    this.#timer = undefined;
  }

  #recompute(): void {
    const members = this.#pending;
    this.#pending = undefined;
    if (members === undefined || this.#closed) return;
    const key = JSON.stringify(members.map((m) => [m.id, m.weight]));
    if (key === this.#key) return;
    this.#lastRun = this.#now();
    const t0 = performance.now();
    const ring = new Ring(members);
    const owned = ownedBy(this.universe, ring, this.selfId);
    const { gained, lost } = diff(this.#owned.pks, owned.pks);
    // on the first recompute, the ring this node joins: every other member already polls its share
    const before = this.recomputes === 0 ? new Ring(members.filter((m) => m.id !== this.selfId)) : this.#ring;
    const orphaned = orphansOf(this.universe, before, members, gained);
    this.#ring = ring;
    this.#owned = owned;
    this.#key = key;
    this.recomputes++;
    const ms = performance.now() - t0;
    this.emit('ring', ring);
    if (gained.length > 0 || lost.length > 0) {
      this.emit('change', { gained, lost, orphaned, owned, members: ring.members, ms });
    }
  }
}

/** The `gained` pks whose owner on `before` is not among `members` (all of them when `before` is empty). */
export function orphansOf(
  universe: PkUniverse,
  before: Ring,
  members: readonly RingMember[],
  gained: Int32Array,
): Int32Array {
  if (gained.length === 0 || before.points.length === 0) return gained.slice();
  const live = new Set(members.map((m) => m.id));
  const gone = before.members.filter((m) => !live.has(m.id));
  if (gone.length === 0) return new Int32Array(0);
  const parts = gone.map((m) => ownedBy(universe, before, m.id).pks);
  const theirs = new Int32Array(parts.reduce((n, a) => n + a.length, 0));
  parts.reduce((at, a) => (theirs.set(a, at), at + a.length), 0);
  // gained ∩ theirs = gained − (gained − theirs), in gained's order
  const liveOwned = diff(theirs, gained).gained;
  return diff(liveOwned, gained).gained;
}
