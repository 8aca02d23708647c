// The walk over an interval's slots that the poller and the daily check share: each owned pk is due at
// start + hash / 2^32 of the interval and dispatched once an interval in hash order; an owned set that
// changes mid-interval is walked on after the last pk dispatched (none twice), and a gained pk whose
// slot had passed is left to the catch-up rather than walked, once the walk has caught up.
import t from 'tap';
import { SlotWalk } from '../../../lib/polling/slots.js';
import type { OwnedSet } from '../../../lib/ring/ownership.js';

const TWO_32 = 2 ** 32;
const INTERVAL = 1000;
const START = 12_000;

/** An owned set of [pk, hash] pairs, sorted by hash as the ownership sweep gives it. */
function owned(pairs: [number, number][]): OwnedSet {
  const sorted = [...pairs].sort((a, b) => a[1] - b[1]);
  return { pks: Int32Array.from(sorted.map((p) => p[0])), hashes: Uint32Array.from(sorted.map((p) => p[1])) };
}

/** The pks the walk dispatches at `now`, in order. */
function takeDue(walk: SlotWalk, now: number): number[] {
  const taken: number[] = [];
  const due = walk.dueHash(now, walk.interval);
  for (let i = walk.take(due); i >= 0; i = walk.take(due)) taken.push(walk.owned.pks[i]!);
  return taken;
}

/** Four pks at the interval's quarters. */
const QUARTERS = owned([
  [10, 0],
  [11, TWO_32 / 4],
  [12, TWO_32 / 2],
  [13, (3 * TWO_32) / 4],
]);

t.test("a pk's slot is start + hash / 2^32 of the interval; dueHash is its inverse", async (t) => {
  const walk = new SlotWalk(INTERVAL);
  t.equal(walk.startOf(START + 345), START, 'the interval holding a time');
  t.equal(walk.startOf(START), START, 'an interval holds its own start');
  t.equal(walk.slotTime(START, 0), START, 'hash 0 is due at the start');
  t.equal(walk.slotTime(START, TWO_32 / 2), START + 500, 'half the hash range, half the interval');
  t.equal(walk.dueHash(START + 500, START), TWO_32 / 2);
  t.equal(walk.dueHash(START + 250, START), TWO_32 / 4);
});

t.test('each owned pk is dispatched once an interval, in hash order, when its slot comes', async (t) => {
  const walk = new SlotWalk(INTERVAL);
  walk.restart(START);
  walk.follow(QUARTERS);
  t.same(takeDue(walk, START), [10], 'at the start: the pk of hash 0 only');
  t.equal(walk.nextDue(), START + 250, 'the next is due at its slot');
  t.same(takeDue(walk, START + 600), [11, 12], 'later: every pk whose slot has come, in hash order');
  t.same(takeDue(walk, START + 600), [], 'and none again');
  t.equal(walk.left(), 1);
  t.equal(walk.nextDue(), START + 750);
  t.same(takeDue(walk, START + 999), [13]);
  t.equal(walk.left(), 0, 'every pk dispatched');
  t.equal(walk.nextDue(), START + INTERVAL, 'then the next interval is what is due');
  walk.restart(START + INTERVAL);
  t.equal(walk.left(), 4, 'a new interval walks them all again');
  t.same(takeDue(walk, START + INTERVAL + 999), [10, 11, 12, 13]);
});

t.test('an owned set changed mid-interval is walked on after the last pk dispatched, none twice', async (t) => {
  const walk = new SlotWalk(INTERVAL);
  walk.restart(START);
  walk.follow(QUARTERS);
  t.same(takeDue(walk, START + 300), [10, 11]);
  // a ring change: pk 12 lost, pk 20 gained before the last slot dispatched, pk 21 after it
  walk.follow(
    owned([
      [10, 0],
      [20, TWO_32 / 8],
      [11, TWO_32 / 4],
      [21, TWO_32 / 2 + 1],
      [13, (3 * TWO_32) / 4],
    ]),
  );
  t.equal(walk.left(), 2, 'what is left: the pks after the last one dispatched');
  t.same(takeDue(walk, START + 999), [21, 13], 'pk 20, whose slot had passed, is not walked; 10 and 11 not again');
});

t.test('slots passed count as walked only once every pk due by then was dispatched', async (t) => {
  const gained = owned([
    [10, 0],
    [11, TWO_32 / 4],
    [12, TWO_32 / 2],
    [22, TWO_32 * 0.55],
    [13, (3 * TWO_32) / 4],
  ]);
  const behind = new SlotWalk(INTERVAL);
  behind.restart(START);
  behind.follow(QUARTERS);
  behind.reach(behind.dueHash(START + 600, START));
  behind.follow(gained);
  t.same(takeDue(behind, START + 999), [10, 11, 12, 22, 13], 'a walk behind stays where it is: pk 22 is walked');

  const caughtUp = new SlotWalk(INTERVAL);
  caughtUp.restart(START);
  caughtUp.follow(QUARTERS);
  t.same(takeDue(caughtUp, START + 600), [10, 11, 12]);
  caughtUp.reach(caughtUp.dueHash(START + 600, START));
  caughtUp.follow(gained);
  t.same(takeDue(caughtUp, START + 999), [13], 'a walk caught up leaves pk 22, whose slot has passed, to the catch-up');

  const late = new SlotWalk(INTERVAL);
  late.restart(START);
  late.follow(QUARTERS);
  takeDue(late, START + 999);
  late.reach(late.dueHash(START + 1500, START));
  t.equal(late.lastHash, TWO_32 - 1, 'a time past the interval marks no more than its last slot');
});
