// Catch-ups of pks handed over by a live member, held until the store can say what that member
// stored: a joining node then fetches only what its peers did not, instead of every pk it gained
// whose slot had passed (three nodes started together fetched a quarter of the pks twice).
import type { StoredCheck } from './stored.js';

/** A due pk not dispatched yet: `at` the interval its sample is stamped with, `due` when it became due. */
export interface Late {
  pk: number;
  hash: number;
  at: number;
  due: number;
}

interface Held {
  checkAt: number;
  entries: Late[];
}

/**
 * Holds catch-ups for `settleMs` (the last owner's samples reach the store within its flush age
 * and the ring's lag), then asks the store and releases the ones without a point. One whose
 * deadline (its slot in the next interval) would come before the answer is released at once, as
 * is everything when there is no store to ask or it cannot answer.
 */
export class HandoverHold {
  private held: Held[] = [];
  private checking = false;
  /** catch-ups skipped: their last owner had stored them */
  skipped = 0;

  constructor(
    private readonly stored: StoredCheck | undefined,
    private readonly settleMs: number,
    private readonly release: (entries: Late[]) => void,
    private readonly deadline: (l: Late) => number,
  ) {}

  /** Takes `entries` (caught up by the caller's queue now, or held and checked later). */
  hold(entries: Late[], now: number): void {
    if (entries.length === 0) return;
    const checkAt = now + this.settleMs;
    // a second of margin for the check itself and the fetch after it
    const urgent = this.stored ? entries.filter((l) => this.deadline(l) <= checkAt + 1000) : entries;
    if (urgent.length > 0) this.release(urgent);
    if (urgent.length < entries.length) {
      this.held.push({ checkAt, entries: entries.filter((l) => this.deadline(l) > checkAt + 1000) });
    }
  }

  /** When the next check is due, or Infinity. */
  nextCheck(): number {
    return this.held.length > 0 ? this.held[0]!.checkAt : Infinity;
  }

  /** Runs the checks that are due (one at a time); `owns` drops what was lost meanwhile. */
  poll(now: number, owns: (l: Late) => boolean): void {
    if (this.checking || this.held.length === 0 || this.held[0]!.checkAt > now) return;
    const due = this.held.filter((h) => h.checkAt <= now).flatMap((h) => h.entries.filter(owns));
    this.held = this.held.filter((h) => h.checkAt > now);
    this.checking = true;
    void this.check(due).finally(() => (this.checking = false));
  }

  /** Drops everything held (the poller stopped). */
  clear(): void {
    this.held = [];
  }

  private async check(entries: Late[]): Promise<void> {
    const missing: Late[] = [];
    const byInterval = new Map<number, Late[]>();
    for (const l of entries) {
      const list = byInterval.get(l.at);
      if (list) list.push(l);
      else byInterval.set(l.at, [l]);
    }
    for (const [at, list] of byInterval) {
      try {
        const pks = list.map((l) => l.pk);
        const stored = await this.stored!(pks, at);
        list.forEach((l, i) => (stored[i] ? this.skipped++ : missing.push(l)));
      } catch {
        // the store cannot say: fetch (a repeat is harmless, a gap is not)
        for (const l of list) missing.push(l);
      }
    }
    if (missing.length > 0) this.release(missing);
  }
}
