import crypto from 'node:crypto';
import HashRing from 'hashring';

/** A live member of the cluster as the ring sees it. */
export interface RingMember {
  id: string;
  /** Multiplier of the member's share, from MIN_WEIGHT to MAX_WEIGHT (NODE_WEIGHT's bounds). */
  weight: number;
}

/**
 * Virtual nodes per unit of weight (each vnode is 4 points: hashring's replicas).
 * Measured on the 1,000,000-pk universe, 2..32 equal members, 16 id sets: 512 kept every share
 * within -8.4 %..+7.7 % of fair; 384 reached ±9.8 % and 256 ±12.9 % (share spread ~ 1/sqrt(4·V)).
 * A 32-member ring (65,536 points) builds in ~30-60 ms with the old members' digests memoised,
 * ~55-85 ms cold, on a busy 2-core machine (bench/ring.ts); most of it is hashring's own sort.
 */
export const VNODES_PER_WEIGHT = 512;

/** Smallest weight accepted: below it a member would get too few points to mean anything. */
export const MIN_WEIGHT = 0.1;
/** Largest weight accepted: one member of weight 1000 alone would be a two-million-point ring. */
export const MAX_WEIGHT = 16;

/** Owner indexes are stored in Uint16Arrays. */
export const MAX_MEMBERS = 0xffff;

/** Points per vnode: hashring's ketama replicas. */
const REPLICAS = 4;

/**
 * Most points one ring holds (128 members of weight 1, 8 of weight 16). Measured on a busy 2-core
 * machine: 262,144 points build in ~350 ms and take ~24 MB; 1,048,576 took 1.4 s, and a ring is
 * rebuilt on every member change. Members past it are left off the ring (`Ring.left`).
 */
export const MAX_RING_POINTS = 2 ** 18;

/** One-shot md5 (Node >= 20.12): the same digest as hashring's createHash default, ~2.5x faster. */
const md5: (key: string) => Uint8Array =
  typeof (crypto as { hash?: unknown }).hash === 'function'
    ? (key) => crypto.hash('md5', key, 'buffer')
    : (key) => crypto.createHash('md5').update(key).digest();

/**
 * md5 digests of vnode keys (`<id>-<i>`, hashring's format) from earlier ring builds: a rebuild
 * after a join or leave hashes only the new member's vnodes, which halves the build time.
 * Kept for the most recently used MEMO_IDS ids (16 bytes per vnode).
 */
class VnodeDigests {
  static readonly MEMO_IDS = 256;
  readonly #byId = new Map<string, { digests: Uint8Array; filled: number }>();
  readonly #scratch = new Uint8Array(16);

  /** The hash function handed to hashring while it builds the continuum. */
  readonly hash = (key: string): Uint8Array => {
    const dash = key.lastIndexOf('-');
    const id = key.slice(0, dash);
    const i = Number(key.slice(dash + 1));
    let entry = this.#byId.get(id);
    if (entry === undefined) {
      entry = { digests: new Uint8Array(16 * 64), filled: 0 };
      this.#byId.set(id, entry);
      if (this.#byId.size > VnodeDigests.MEMO_IDS) this.#byId.delete(this.#byId.keys().next().value!);
    } else if (i === 0) {
      this.#byId.delete(id); // re-insert: Map order is the LRU order
      this.#byId.set(id, entry);
    }
    if (i < entry.filled) {
      // hashring reads the 16 bytes before its next call, so one scratch buffer is enough.
      for (let b = 0; b < 16; b++) this.#scratch[b] = entry.digests[16 * i + b]!;
      return this.#scratch;
    }
    const digest = md5(key);
    if (i === entry.filled) {
      if (16 * (i + 1) > entry.digests.length) {
        const grown = new Uint8Array(entry.digests.length * 2);
        grown.set(entry.digests);
        entry.digests = grown;
      }
      entry.digests.set(digest, 16 * i);
      entry.filled++;
    }
    return digest;
  };
}

const vnodeDigests = new VnodeDigests();

/** hashring's hash function: memoised while a continuum is being built, plain md5 for key lookups. */
let building = false;
const ringHash = (key: string): Uint8Array => (building ? vnodeDigests.hash(key) : md5(key));

export interface RingOptions {
  /** Override VNODES_PER_WEIGHT (benchmarks and tests only: every node must use the same value). */
  vnodesPerWeight?: number;
}

/**
 * The consistent-hash ring over the live members, built with `hashring` (md5, 4 replicas).
 * Every node builds the identical ring from the member list alone, whatever its order.
 */
export class Ring {
  /** Members sorted by id; `pointOwner` and ownership arrays index into this. */
  readonly members: readonly RingMember[];
  /** Members given but left off because the ring was full (MAX_RING_POINTS), sorted by id. */
  readonly left: readonly RingMember[];
  /** Member ids sorted, same order as `members`. */
  readonly ids: readonly string[];
  /** Point values of the continuum, ascending (hashring's own order, ties included). */
  readonly points: Uint32Array;
  /** For each point, the index of its owner in `members`. */
  readonly pointOwner: Uint16Array;
  /** Vnodes given to each member (points = vnodes * replicas), same order as `members`. */
  readonly vnodes: Uint32Array;

  readonly #hashring: HashRing;
  readonly #index: Map<string, number>;
  readonly #pointCounts: Uint32Array;

  constructor(members: readonly RingMember[], options: RingOptions = {}) {
    const perWeight = options.vnodesPerWeight ?? VNODES_PER_WEIGHT;
    if (!Number.isInteger(perWeight) || perWeight < 1) {
      throw new RangeError(`vnodesPerWeight must be a positive integer, got ${perWeight}`);
    }
    const { kept: sorted, left } = fitRing(normalizeMembers(members), perWeight);
    this.members = Object.freeze(sorted);
    this.left = Object.freeze(left);
    this.ids = Object.freeze(sorted.map((m) => m.id));
    this.#index = new Map(this.ids.map((id, i) => [id, i]));

    this.vnodes = new Uint32Array(sorted.length);
    const servers: Record<string, { vnodes: number }> = {};
    sorted.forEach((m, i) => {
      const vnodes = vnodesOf(m, perWeight);
      this.vnodes[i] = vnodes;
      servers[m.id] = { vnodes };
    });
    // 'vnode count' 0: hashring replaces a vnode count equal to its default (40) with a
    // weight-scaled floor (39 for n = 7, 14, ...), which would move keys between old members.
    building = true;
    try {
      this.#hashring = new HashRing(servers, ringHash, { 'vnode count': 0 });
    } finally {
      building = false;
    }

    const continuum = this.#hashring.ring;
    this.points = new Uint32Array(continuum.length);
    this.pointOwner = new Uint16Array(continuum.length);
    this.#pointCounts = new Uint32Array(sorted.length);
    for (let i = 0; i < continuum.length; i++) {
      const point = continuum[i]!;
      const owner = this.#index.get(point.server)!;
      this.points[i] = point.value;
      this.pointOwner[i] = owner;
      this.#pointCounts[owner]!++;
    }
  }

  /** The member a pk belongs to (hashring's own lookup: one md5 per call), or undefined if empty. */
  ownerOf(pk: number): string | undefined {
    return this.#hashring.get(String(pk));
  }

  /** Owner of a 32-bit hash value, by hashring's own find() (no md5), or undefined if empty. */
  ownerOfHash(hash: number): string | undefined {
    return this.#hashring.ring[this.#hashring.find(hash)]?.server;
  }

  /** hashring's 32-bit hash of a pk: md5 of its decimal string, first 4 bytes little-endian. */
  hashOf(pk: number): number {
    return this.#hashring.hashValue(String(pk));
  }

  /** Index of a member in `members`, or -1. */
  indexOf(id: string): number {
    return this.#index.get(id) ?? -1;
  }

  has(id: string): boolean {
    return this.#index.has(id);
  }

  /** Number of points the member holds on the continuum (0 if not a member). */
  pointsOf(id: string): number {
    const i = this.#index.get(id);
    return i === undefined ? 0 : this.#pointCounts[i]!;
  }

  get size(): number {
    return this.members.length;
  }
}

function vnodesOf(m: RingMember, perWeight: number): number {
  return Math.max(1, Math.round(perWeight * m.weight));
}

/**
 * The members (sorted by id) that fit in MAX_RING_POINTS and MAX_MEMBERS, and those left off: the
 * heaviest first, then the greatest ids, so every node given the same list leaves off the same.
 */
export function fitRing(
  sorted: readonly RingMember[],
  perWeight = VNODES_PER_WEIGHT,
): { kept: RingMember[]; left: RingMember[] } {
  let points = sorted.reduce((sum, m) => sum + REPLICAS * vnodesOf(m, perWeight), 0);
  let count = sorted.length;
  if (points <= MAX_RING_POINTS && count <= MAX_MEMBERS) return { kept: [...sorted], left: [] };
  const out = new Set<RingMember>();
  const heaviestFirst = [...sorted].sort((a, b) => b.weight - a.weight || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  for (const m of heaviestFirst) {
    if (points <= MAX_RING_POINTS && count <= MAX_MEMBERS) break;
    out.add(m);
    points -= REPLICAS * vnodesOf(m, perWeight);
    count--;
  }
  return { kept: sorted.filter((m) => !out.has(m)), left: sorted.filter((m) => out.has(m)) };
}

/** Validated copies of the members, sorted by id (code-unit order); throws on a bad or duplicate member. */
export function normalizeMembers(members: readonly RingMember[]): RingMember[] {
  const sorted = members.map(checkMember).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.id === sorted[i - 1]!.id)
      throw new RangeError(`duplicate member id ${JSON.stringify(sorted[i]!.id)}`);
  }
  return sorted;
}

function checkMember(m: RingMember): RingMember {
  const problem = memberProblem(m);
  if (problem !== undefined) throw new RangeError(typeof m?.id === 'string' ? `member ${m.id}: ${problem}` : problem);
  return { id: m.id, weight: m.weight };
}

/** Why the ring refuses a member, or undefined: one check for the ring and for member cards. */
export function memberProblem(m: { id?: unknown; weight?: unknown }): string | undefined {
  if (typeof m?.id !== 'string' || m.id === '' || m.id === '__proto__') {
    return `member id must be a non-empty string, got ${JSON.stringify(m?.id)}`;
  }
  const w = m.weight;
  if (typeof w !== 'number' || !Number.isFinite(w) || w < MIN_WEIGHT || w > MAX_WEIGHT) {
    const shown = typeof w === 'string' ? JSON.stringify(w) : String(w);
    return `weight must be a number from ${MIN_WEIGHT} to ${MAX_WEIGHT}, got ${shown}`;
  }
  return undefined;
}
