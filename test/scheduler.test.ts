// A pk handed over just after an interval began: the last owner may have let it go before its slot
// in the interval that just ended (it saw the new member first, or its clock is behind). The new
// owner fetches that interval too when the slot passed less than catchUpMs ago.
import t from 'tap';
import { Scheduler, type Fetcher } from '../lib/scheduler.js';
import type { Sample } from '../lib/store.js';

const TWO_32 = 2 ** 32;
const I = 10_000;

function setup(now: { t: number }, catchUpMs?: number): { scheduler: Scheduler; stored: Array<[number, number]> } {
  const fetcher: Fetcher = {
    fetch: async (pk) => ({ kind: 'ok', attempts: 1, influencer: { pk, username: `u${pk}`, followerCount: 1, followingCount: 1 } }),
  };
  const stored: Array<[number, number]> = [];
  const scheduler = new Scheduler(fetcher, (s: Sample) => stored.push([s.pk, s.at]), { intervalMs: I, concurrency: 8, now: () => now.t, catchUpMs });
  return { scheduler, stored };
}

// slots at 1 %, 20 % and 90 % of the interval
const owned = { pks: Int32Array.from([1, 2, 3]), hashes: Uint32Array.from([0.01, 0.2, 0.9].map((f) => Math.floor(f * TWO_32))) };

t.test('gained pks: the current interval if their slot passed, the previous one if it passed less than catchUpMs ago', async (t) => {
  const now = { t: 20_500 };
  const { scheduler, stored } = setup(now, 5000);
  scheduler.start();
  scheduler.setOwned(owned, owned.pks);
  await new Promise((r) => setTimeout(r, 100));
  await scheduler.stop();
  t.same(stored.sort((a, b) => a[0] - b[0] || a[1] - b[1]), [
    [1, 20_000], // its slot (20,100) has passed in this interval
    [3, 10_000], // its slot in the previous interval (19,000) passed 1.5 s ago
  ], 'pk 2 (previous slot 12,000: 8.5 s ago) is left to its slot in this interval');
});

t.test('the default catch-up is min(interval, 5 s), and pks already owned are not fetched again', async (t) => {
  const now = { t: 20_500 };
  const { scheduler, stored } = setup(now);
  scheduler.start();
  scheduler.setOwned({ pks: owned.pks.slice(0, 1), hashes: owned.hashes.slice(0, 1) }, [1]);
  scheduler.setOwned(owned, [2, 3]);
  await new Promise((r) => setTimeout(r, 100));
  await scheduler.stop();
  t.same(stored.sort((a, b) => a[0] - b[0] || a[1] - b[1]), [[1, 20_000], [3, 10_000]]);
});

t.test('catchUpMs 0: only the current interval is caught up', async (t) => {
  const now = { t: 20_500 };
  const { scheduler, stored } = setup(now, 0);
  scheduler.start();
  scheduler.setOwned(owned, owned.pks);
  await new Promise((r) => setTimeout(r, 100));
  await scheduler.stop();
  t.same(stored, [[1, 20_000]]);
});
