// A pk handed over just after an interval began: the last owner may have let it go before its slot
// in the interval that just ended (it saw the new member first, or its clock is behind). The new
// owner fetches that interval too when the slot passed less than catchUpMs ago.
import t from 'tap';
import { Scheduler, type Fetcher } from '../lib/scheduler.js';
import type { Sample } from '../lib/store.js';

const TWO_32 = 2 ** 32;
const I = 10_000;

/**
 * A scheduler at 20,500 ms (0.5 s into the interval [20,000, 30,000)) that `own` hands pks to;
 * returns the (pk, interval) pairs it stored, sorted.
 */
async function caughtUp(catchUpMs: number | undefined, own: (scheduler: Scheduler) => void): Promise<Array<[number, number]>> {
  const fetcher: Fetcher = {
    fetch: async (pk) => ({ kind: 'ok', attempts: 1, influencer: { pk, username: `u${pk}`, followerCount: 1, followingCount: 1 } }),
  };
  const stored: Array<[number, number]> = [];
  const scheduler = new Scheduler(fetcher, (s: Sample) => stored.push([s.pk, s.at]), { intervalMs: I, concurrency: 8, now: () => 20_500, catchUpMs });
  scheduler.start();
  own(scheduler);
  await new Promise((r) => setTimeout(r, 100));
  await scheduler.stop();
  return stored.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

// slots at 1 %, 20 % and 90 % of the interval
const owned = { pks: Int32Array.from([1, 2, 3]), hashes: Uint32Array.from([0.01, 0.2, 0.9].map((f) => Math.floor(f * TWO_32))) };

t.test('gained pks: the current interval if their slot passed, the previous one if it passed less than catchUpMs ago', async (t) => {
  t.same(await caughtUp(5000, (s) => s.setOwned(owned, owned.pks)), [
    [1, 20_000], // its slot (20,100) has passed in this interval
    [3, 10_000], // its slot in the previous interval (19,000) passed 1.5 s ago
  ], 'pk 2 (previous slot 12,000: 8.5 s ago) is left to its slot in this interval');
});

t.test('the default catch-up is min(interval, 5 s), and pks already owned are not fetched again', async (t) => {
  t.same(await caughtUp(undefined, (s) => {
    s.setOwned({ pks: owned.pks.slice(0, 1), hashes: owned.hashes.slice(0, 1) }, [1]);
    s.setOwned(owned, [2, 3]);
  }), [[1, 20_000], [3, 10_000]]);
});

t.test('catchUpMs 0: only the current interval is caught up', async (t) => {
  t.same(await caughtUp(0, (s) => s.setOwned(owned, owned.pks)), [[1, 20_000]]);
});
