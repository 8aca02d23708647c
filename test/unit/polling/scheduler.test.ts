// A pk handed over just after an interval began: the last owner may have let it go before its slot
// in the interval that just ended (it saw the new member first, or its clock is behind). The new
// owner fetches that interval too when the slot passed less than catchUpMs ago. A node paused across
// intervals fetches nothing past its deadline, and a pk lost while queued is left to its new owner.
import t from 'tap';
import { Scheduler, type Fetcher } from '../../../lib/polling/scheduler.js';
import type { FetchResult } from '../../../lib/polling/source.js';
import type { Sample } from '../../../lib/storage/format/documents.js';
import type { StoredCheck } from '../../../lib/polling/stored.js';
import { sleep } from '../../kit/wait.js';
import { createLogger } from '../../../lib/shared/log.js';

const log = createLogger('warn');

const TWO_32 = 2 ** 32;
const I = 10_000;

const answer = (pk: number): FetchResult => ({
  kind: 'ok',
  attempts: 1,
  influencer: { pk, username: `u${pk}`, followerCount: 1, followingCount: 1 },
});

/** A scheduler on a clock the test moves (starting at 20,500 ms: 0.5 s into [20,000, 30,000)). */
function onClock(
  opts: {
    catchUpMs?: number;
    concurrency?: number;
    fetch?: Fetcher['fetch'];
    stored?: StoredCheck;
    settleMs?: number;
  } = {},
) {
  const clock = { now: 20_500 };
  const fetcher: Fetcher = {
    fetch: opts.fetch ?? (async (pk) => answer(pk)),
  };
  const stored: Array<[number, number]> = [];
  const scheduler = new Scheduler(fetcher, (s: Sample) => stored.push([s.pk, s.at]), {
    intervalMs: I,
    concurrency: opts.concurrency ?? 8,
    now: () => clock.now,
    catchUpMs: opts.catchUpMs,
    stored: opts.stored,
    settleMs: opts.settleMs,
    log,
  });
  scheduler.start();
  /** lets the scheduler's timers run, then returns what it stored, sorted */
  const settle = async (): Promise<Array<[number, number]>> => {
    await sleep(100);
    return stored.slice().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  };
  return { scheduler, clock, settle };
}

/** The (pk, interval) pairs a scheduler at 20,500 ms stores once `own` hands it pks, sorted. */
async function caughtUp(
  catchUpMs: number | undefined,
  own: (scheduler: Scheduler) => void,
): Promise<Array<[number, number]>> {
  const { scheduler, settle } = onClock({ catchUpMs });
  own(scheduler);
  const stored = await settle();
  await scheduler.stop();
  return stored;
}

// slots at 1 %, 20 % and 90 % of the interval
const owned = {
  pks: Int32Array.from([1, 2, 3]),
  hashes: Uint32Array.from([0.01, 0.2, 0.9].map((f) => Math.floor(f * TWO_32))),
};

t.test(
  'gained pks: the current interval if their slot passed, the previous one if it passed less than catchUpMs ago',
  async (t) => {
    t.same(
      await caughtUp(5000, (s) => s.setOwned(owned, owned.pks)),
      [
        [1, 20_000], // its slot (20,100) has passed in this interval
        [3, 10_000], // its slot in the previous interval (19,000) passed 1.5 s ago
      ],
      'pk 2 (previous slot 12,000: 8.5 s ago) is left to its slot in this interval',
    );
  },
);

t.test('the default catch-up is min(interval, 5 s), and pks already owned are not fetched again', async (t) => {
  t.same(
    await caughtUp(undefined, (s) => {
      s.setOwned({ pks: owned.pks.slice(0, 1), hashes: owned.hashes.slice(0, 1) }, [1]);
      s.setOwned(owned, [2, 3]);
    }),
    [
      [1, 20_000],
      [3, 10_000],
    ],
  );
});

t.test('catchUpMs 0: only the current interval is caught up', async (t) => {
  t.same(await caughtUp(0, (s) => s.setOwned(owned, owned.pks)), [[1, 20_000]]);
});

t.test('paused across intervals: what is past its next slot is missed, never fetched stale', async (t) => {
  const { scheduler, clock, settle } = onClock();
  scheduler.setOwned(owned);
  t.same(await settle(), [[1, 20_000]], 'pk 1 at its slot (20,100)');
  // SIGSTOP, a long GC or the clock stepped forward: the next look is five intervals later
  clock.now = 70_500;
  t.same(
    await settle(),
    [
      [1, 20_000],
      [1, 70_000], // its slot (70,100) has passed in this interval
      [2, 60_000], // slots of the interval before (62,000 and 69,000) whose next (72,000, 79,000) has not come
      [3, 60_000],
    ],
    'nothing stamped 20,000 is fetched at 70,500',
  );
  // pks 2 and 3 in 20,000; all three in 30,000, 40,000, 50,000; pk 1 in 60,000 (its 70,100 passed)
  t.equal(scheduler.stats().missed, 2 + 9 + 1, 'every skipped owned pk-interval is missed');
  await scheduler.stop();
});

t.test('a late pk is fetched until its slot in the next interval, then missed', async (t) => {
  const { scheduler, clock, settle } = onClock({ catchUpMs: 0 });
  scheduler.setOwned(owned);
  await settle();
  clock.now = 30_050; // past 30,000 by less than pk 1's offset (100 ms): 2 and 3 are late, not stale
  t.same(await settle(), [
    [1, 20_000],
    [2, 20_000],
    [3, 20_000],
  ]);
  t.equal(scheduler.stats().missed, 0);
  await scheduler.stop();
});

t.test('a pk lost while waiting in the late queue is not fetched', async (t) => {
  const release: Array<() => void> = [];
  const { scheduler, clock, settle } = onClock({
    catchUpMs: 5000,
    concurrency: 1,
    fetch: (pk) => new Promise((resolve) => release.push(() => resolve(answer(pk)))),
  });
  clock.now = 22_500;
  scheduler.setOwned({ pks: owned.pks.slice(1), hashes: owned.hashes.slice(1) }); // pk 2 due: fetched, held
  await settle();
  scheduler.setOwned(owned, [1]); // gained after its slot (20,100): queued late behind pk 2
  await settle();
  scheduler.setOwned({ pks: owned.pks.slice(1), hashes: owned.hashes.slice(1) }); // and lost to a joining node
  while (release.length > 0) {
    release.shift()!();
    await settle();
  }
  t.same(await settle(), [[2, 20_000]], 'pk 1 is left to its new owner');
  await scheduler.stop();
});

t.test('pks handed over by a live member: held settleMs, then fetched only if the store lacks them', async (t) => {
  const asked: Array<[number[], number]> = [];
  const stored: StoredCheck = async (pks, at) => {
    asked.push([[...pks], at]);
    return pks.map((pk) => pk === 1); // the last owner stored pk 1 of this interval, not pk 2
  };
  const { scheduler, clock, settle } = onClock({ catchUpMs: 0, stored, settleMs: 2000 });
  await settle();
  clock.now = 25_000; // the slots of pks 1 (20,100) and 2 (22,000) have passed
  scheduler.setOwned(owned, owned.pks, []);
  t.same(await settle(), [], 'nothing fetched while the last owner may still be storing them');
  clock.now = 27_100;
  t.same(await settle(), [[2, 20_000]], 'after settleMs: only the pk the store lacks');
  t.same(asked, [[[1, 2], 20_000]], 'one question for both');
  t.equal(scheduler.stats().handoverStored, 1, 'the skipped catch-up is counted');
  clock.now = 29_100;
  t.same(await settle(), [
    [2, 20_000],
    [3, 20_000],
  ]);
  await scheduler.stop();
});

t.test('orphaned pks are caught up at once; a store that cannot answer means fetch', async (t) => {
  const failing: StoredCheck = async () => {
    throw new Error('redis down');
  };
  const { scheduler, clock, settle } = onClock({ catchUpMs: 0, stored: failing, settleMs: 2000 });
  await settle();
  clock.now = 25_000;
  scheduler.setOwned(owned, owned.pks, [1]);
  t.same(await settle(), [[1, 20_000]], 'pk 1 had no live owner: fetched at once');
  clock.now = 27_100;
  t.same(
    await settle(),
    [
      [1, 20_000],
      [2, 20_000],
    ],
    'pk 2 fetched once the store failed to answer',
  );
  await scheduler.stop();
});

t.test('a held catch-up whose deadline would pass before the check is fetched at once', async (t) => {
  const stored: StoredCheck = async (pks) => pks.map(() => true);
  const { scheduler, clock, settle } = onClock({ catchUpMs: 0, stored, settleMs: 2000 });
  await settle();
  clock.now = 29_500; // pk 1's next slot (30,100) comes before the check (31,500)
  scheduler.setOwned({ pks: owned.pks.slice(0, 1), hashes: owned.hashes.slice(0, 1) }, [1], []);
  t.same(await settle(), [[1, 20_000]]);
  await scheduler.stop();
});

t.test('a new cluster of a million pks, started late in an interval, queues its catch-ups', async (t) => {
  const n = 1_000_000;
  const big = {
    pks: Int32Array.from({ length: n }, (_, i) => i + 1),
    hashes: Uint32Array.from({ length: n }, (_, i) => Math.floor((i / n) * TWO_32)),
  };
  const { scheduler, clock } = onClock({ concurrency: 1, fetch: () => new Promise(() => undefined) });
  clock.now = 29_000; // 90 % of the slots have passed
  t.doesNotThrow(() => scheduler.setOwned(big, big.pks, big.pks), 'no stack overflow');
  t.doesNotThrow(() => scheduler.setOwned(big, [], []));
  t.equal(scheduler.stats().inFlight, 1, 'the first catch-up is in flight');
  void scheduler.stop();

  let asked = 0;
  const stored: StoredCheck = async (pks) => ((asked += pks.length), pks.map((pk) => pk % 2 === 0));
  const held = onClock({
    concurrency: 1,
    catchUpMs: 0,
    stored,
    settleMs: 2000,
    fetch: () => new Promise(() => undefined),
  });
  held.clock.now = 25_000; // half the slots have passed: half a million catch-ups held, then checked
  held.scheduler.setOwned(big, big.pks, []);
  held.clock.now = 27_100;
  await held.settle();
  const passed = big.pks.filter((_, i) => big.hashes[i]! <= TWO_32 / 2);
  t.equal(asked, passed.length, `all ${passed.length} of them asked about`);
  t.equal(
    held.scheduler.stats().handoverStored,
    passed.filter((pk) => pk % 2 === 0).length,
    'the stored half left out',
  );
  void held.scheduler.stop();
});
