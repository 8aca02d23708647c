import type { OwnedSet } from '../ring/ownership.js';
import { TWO_32, upperBound } from '../shared/util.js';

/**
 * The walk over an interval's slots, shared by the poller (every interval) and the daily
 * suspicious check (every day): each owned pk is due at `start + hash / 2^32 × interval`, so the
 * owned set, sorted by hash, is also sorted by due time and a cursor walks it. When the owned set
 * changes mid-interval the walk carries on after the last hash it dispatched.
 */
export class SlotWalk {
  /** start of the interval walked (epoch ms; -1 before the first) */
  interval = -1;
  /** index in `owned` of the next pk to dispatch */
  cursor = 0;
  /** hash of the last pk dispatched in this interval (-1: none yet) */
  lastHash = -1;
  owned: OwnedSet = { pks: new Int32Array(0), hashes: new Uint32Array(0) };

  constructor(readonly intervalMs: number) {}

  /** Start of the interval holding `now`. */
  startOf(now: number): number {
    return Math.floor(now / this.intervalMs) * this.intervalMs;
  }

  /** The hash up to which pks are due at `now` in the interval starting at `start`. */
  dueHash(now: number, start: number): number {
    return ((now - start) / this.intervalMs) * TWO_32;
  }

  /** When the pk of `hash` is due in the interval starting at `start`. */
  slotTime(start: number, hash: number): number {
    return start + (hash / TWO_32) * this.intervalMs;
  }

  /** A new interval: the walk begins again at its first slot. */
  restart(start: number): void {
    this.interval = start;
    this.cursor = 0;
    this.lastHash = -1;
  }

  /** A new owned set: the walk carries on after the last hash dispatched. */
  follow(owned: OwnedSet): void {
    this.owned = owned;
    this.cursor = upperBound(owned.hashes, this.lastHash);
  }

  /**
   * Marks the slots up to `dueHash` as walked when every owned pk due by then has been dispatched, so
   * that pks gained before it are caught up (and can be held for a check) rather than walked; a walk
   * that is behind stays where it is.
   */
  reach(dueHash: number): void {
    const hashes = this.owned.hashes;
    if (this.cursor < hashes.length && hashes[this.cursor]! <= dueHash) return;
    this.lastHash = Math.max(this.lastHash, Math.min(TWO_32 - 1, Math.floor(dueHash)));
  }

  /** The index in `owned` of the next pk due by `dueHash`, the walk moved past it; -1 when none is due. */
  take(dueHash: number): number {
    const hashes = this.owned.hashes;
    if (this.cursor >= hashes.length || hashes[this.cursor]! > dueHash) return -1;
    this.lastHash = hashes[this.cursor]!;
    return this.cursor++;
  }

  /** When the next pk is due: its slot, or the next interval's start once every pk was dispatched. */
  nextDue(): number {
    if (this.cursor < this.owned.pks.length) return this.slotTime(this.interval, this.owned.hashes[this.cursor]!);
    return this.interval + this.intervalMs;
  }

  /** Owned pks the walk has not reached in this interval. */
  left(): number {
    return Math.max(0, this.owned.pks.length - this.cursor);
  }
}
