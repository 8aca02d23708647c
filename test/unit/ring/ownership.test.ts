import t from 'tap';
import { Ring, type RingMember } from '../../../lib/ring/ring.js';
import { PkUniverse } from '../../../lib/ring/pk-universe.js';
import {
  NO_OWNER,
  OwnershipTracker,
  diff,
  ownedBy,
  ownedCounts,
  sweep,
  type OwnershipChange,
} from '../../../lib/ring/ownership.js';

const equal = (ids: string[]): RingMember[] => ids.map((id) => ({ id, weight: 1 }));
const seqIds = (n: number) => Array.from({ length: n }, (_, i) => `node-${i + 1}`);

const universe = new PkUniverse();

/** Element-wise equality (tap's deep compare is slow on large typed arrays). */
function sameArray(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Owner of every sorted position, as an index into `ids` (one shared numbering for two rings). */
function ownerIndexes(ring: Ring, ids: string[]): Uint16Array {
  const toShared = ring.ids.map((id) => ids.indexOf(id));
  return sweep(universe, ring).map((o) => (o === NO_OWNER ? NO_OWNER : toShared[o]!));
}

t.test('the universe is every pk once, sorted by hash then pk', async (t) => {
  const { sortedHashes: h, sortedPks: p } = universe;
  t.equal(universe.size, 1_000_000);
  const seen = new Uint8Array(universe.size);
  let bad = 0;
  for (let i = 0; i < universe.size; i++) {
    seen[p[i]! - universe.pkMin]++;
    if (i > 0 && (h[i - 1]! > h[i]! || (h[i - 1] === h[i] && p[i - 1]! >= p[i]!))) bad++;
  }
  t.equal(bad, 0, 'ascending by (hash, pk)');
  t.ok(
    seen.every((c) => c === 1),
    'a permutation of pkMin..pkMax',
  );
});

t.test('sweep agrees with hashring for every pk of the default universe', async (t) => {
  const { sortedPks, sortedHashes } = universe;
  const check = (ring: Ring, lookup: 'get' | 'find') => {
    const owners = sweep(universe, ring);
    let mismatches = 0;
    for (let i = 0; i < universe.size; i++) {
      const expected = lookup === 'get' ? ring.ownerOf(sortedPks[i]!) : ring.ownerOfHash(sortedHashes[i]!);
      if (expected !== ring.ids[owners[i]!]) mismatches++;
    }
    t.equal(mismatches, 0, `${ring.ids.join(',')}: 1,000,000 pks agree with hashring ${lookup}()`);
    const counts = ownedCounts(universe, ring);
    t.equal(
      counts.reduce((a, b) => a + b, 0),
      universe.size,
    );
    ring.ids.forEach((id, m) => {
      const owned = ownedBy(universe, ring, id);
      t.equal(owned.pks.length, counts[m], `${id}: ownedBy count = ownedCounts`);
      let expected = 0;
      let ok = true;
      for (let i = 0; i < universe.size && ok; i++) {
        if (owners[i] !== m) continue;
        ok = owned.pks[expected] === sortedPks[i] && owned.hashes[expected] === sortedHashes[i];
        expected++;
      }
      t.ok(ok && expected === owned.pks.length, `${id}: ownedBy = its pks from the sweep, in hash order`);
    });
  };
  // get(): md5 of every pk inside hashring, so this one also checks the universe's hashes.
  check(new Ring(equal(['node-a', 'node-b', 'node-c'])), 'get');
  check(
    new Ring([
      { id: 'x', weight: 1 },
      { id: 'y', weight: 2 },
      { id: '42', weight: 0.5 },
    ]),
    'find',
  );
  check(new Ring(equal(seqIds(16))), 'find');
  t.equal(ownedBy(universe, new Ring(equal(['a'])), 'nobody').pks.length, 0, 'a non-member owns nothing');
});

t.test('a join moves pks only to the new member, about 1/(n+1) of them', async (t) => {
  const ratios: string[] = [];
  for (let n = 1; n <= 8; n++) {
    const all = seqIds(n + 1);
    const before = ownerIndexes(new Ring(equal(seqIds(n))), all);
    const after = ownerIndexes(new Ring(equal(all)), all);
    const joiner = n; // index of node-(n+1) in all
    let moved = 0;
    let elsewhere = 0;
    for (let i = 0; i < universe.size; i++) {
      if (before[i] !== after[i]) {
        moved++;
        if (after[i] !== joiner) elsewhere++;
      }
    }
    const ratio = moved / universe.size / (1 / (n + 1));
    ratios.push(`n=${n}: ${ratio.toFixed(3)}`);
    t.equal(elsewhere, 0, `n=${n}: every moved pk went to node-${n + 1}`);
    t.ok(ratio > 0.75 && ratio < 1.25, `n=${n}: moved ${moved} = ${ratio.toFixed(3)} × 1/(n+1)`);
  }
  t.comment(`join moved / (1/(n+1)): ${ratios.join(', ')}`);
});

t.test('a leave moves only the leaver’s pks', async (t) => {
  const ids = seqIds(5);
  const before = ownerIndexes(new Ring(equal(ids)), ids);
  for (const leaverId of ['node-1', 'node-3', 'node-5']) {
    const leaver = ids.indexOf(leaverId);
    const after = ownerIndexes(new Ring(equal(ids.filter((id) => id !== leaverId))), ids);
    let moved = 0;
    let wrong = 0;
    let had = 0;
    for (let i = 0; i < universe.size; i++) {
      if (before[i] === leaver) had++;
      if (before[i] !== after[i]) {
        moved++;
        if (before[i] !== leaver) wrong++;
      }
    }
    t.equal(wrong, 0, `${leaverId}: no other member's pk moved`);
    t.equal(moved, had, `${leaverId}: all ${had} of its pks moved`);
  }
});

t.test('diff is the exact set difference, in input order', async (t) => {
  const ids = seqIds(4);
  const prev = ownedBy(universe, new Ring(equal(ids)), 'node-1').pks;
  const next = ownedBy(universe, new Ring(equal([...ids, 'node-5'])), 'node-1').pks;
  const check = (a: Int32Array, b: Int32Array, label: string) => {
    const { gained, lost } = diff(a, b);
    const sa = new Set(a);
    const sb = new Set(b);
    t.ok(
      sameArray(
        gained,
        b.filter((pk) => !sa.has(pk)),
      ),
      `${label}: gained (${gained.length})`,
    );
    t.ok(
      sameArray(
        lost,
        a.filter((pk) => !sb.has(pk)),
      ),
      `${label}: lost (${lost.length})`,
    );
  };
  check(prev, next, 'node-1 after a join');
  check(next, prev, 'node-1 after a leave');
  const { gained, lost } = diff(prev, next);
  t.equal(gained.length, 0, 'a join only takes pks from old members');
  t.equal(prev.length - lost.length, next.length);
  check(new Int32Array(0), next, 'from nothing');
  check(prev, new Int32Array(0), 'to nothing');
  check(prev, prev, 'unchanged');
  // a sparse span takes the sorted-copy path
  check(Int32Array.of(-2_000_000_000, 5, 7, 2_000_000_000), Int32Array.of(7, 2_000_000_000, 9, -1), 'sparse');
  check(Int32Array.of(3, 1, 2), Int32Array.of(2, 4, 1), 'dense, unsorted');
});

/** A clock and timers the test moves by hand. */
function fakeTime() {
  let now = 0;
  const timers: { fn: () => void; at: number; cancelled: boolean }[] = [];
  return {
    now: () => now,
    setTimer: (fn: () => void, ms: number) => {
      const timer = { fn, at: now + ms, cancelled: false };
      timers.push(timer);
      return timer;
    },
    clearTimer: (h: unknown) => {
      (h as { cancelled: boolean }).cancelled = true;
    },
    pending: () => timers.filter((x) => !x.cancelled).length,
    advance(ms: number) {
      now += ms;
      for (const timer of timers.splice(0)) {
        if (timer.cancelled) continue;
        if (timer.at <= now) timer.fn();
        else timers.push(timer);
      }
    },
  };
}

t.test('OwnershipTracker: rate limit, coalescing, gained and lost', async (t) => {
  const small = new PkUniverse(1, 20_000);
  const time = fakeTime();
  const tracker = new OwnershipTracker(small, 'node-1', { minIntervalMs: 1000, ...time });
  const changes: OwnershipChange[] = [];
  const rings: Ring[] = [];
  tracker.on('change', (c) => changes.push(c));
  tracker.on('ring', (r) => rings.push(r));
  const expectOwned = (ids: string[]) => ownedBy(small, new Ring(equal(ids)), 'node-1');

  t.equal(tracker.owned().pks.length, 0, 'owns nothing before the first member list');
  t.equal(tracker.ring().size, 0);

  tracker.setMembers(equal(['node-1', 'node-2']));
  t.equal(tracker.recomputes, 1, 'the first call computes at once');
  t.equal(changes.length, 1);
  const first = expectOwned(['node-1', 'node-2']);
  t.ok(sameArray(changes[0]!.gained, first.pks), 'gained everything it owns, in hash order');
  t.equal(changes[0]!.lost.length, 0);
  t.ok(sameArray(tracker.owned().pks, first.pks) && sameArray(tracker.owned().hashes, first.hashes));
  t.same(
    changes[0]!.members.map((m) => m.id),
    ['node-1', 'node-2'],
  );
  t.ok(changes[0]!.ms >= 0);
  t.equal(rings.length, 1);

  // a burst of 5 within the interval: one trailing recompute with the latest list
  time.advance(100);
  tracker.setMembers(equal(['node-1', 'node-2', 'node-3']));
  tracker.setMembers(equal(['node-1', 'node-3']));
  time.advance(100);
  tracker.setMembers(equal(['node-1', 'node-2', 'node-4']));
  tracker.setMembers(equal(['node-2', 'node-1', 'node-3', 'node-4']));
  tracker.setMembers(equal(['node-4', 'node-3', 'node-2', 'node-1']));
  t.equal(tracker.recomputes, 1, 'no recompute inside the interval');
  t.equal(time.pending(), 1, 'one trailing timer');
  time.advance(799);
  t.equal(tracker.recomputes, 1, 'not before minIntervalMs');
  time.advance(1);
  t.equal(tracker.recomputes, 2, 'the burst cost one recompute');
  t.equal(changes.length, 2);
  const four = expectOwned(['node-1', 'node-2', 'node-3', 'node-4']);
  t.ok(
    sameArray(tracker.owned().pks, four.pks) && sameArray(tracker.owned().hashes, four.hashes),
    'computed from the latest list',
  );
  t.ok(sameArray(changes[1]!.gained, diff(first.pks, four.pks).gained));
  t.ok(sameArray(changes[1]!.lost, diff(first.pks, four.pks).lost));
  t.equal(changes[1]!.gained.length, 0, 'a join only loses pks');
  t.equal(changes[1]!.lost.length, first.pks.length - four.pks.length);
  t.equal(tracker.ring().size, 4);

  // the same set in another order, long after: nothing happens
  time.advance(5000);
  tracker.setMembers(equal(['node-3', 'node-4', 'node-1', 'node-2']));
  t.equal(tracker.recomputes, 2, 'unchanged set: no recompute');
  t.equal(changes.length, 2, 'unchanged set: no event');
  t.equal(time.pending(), 0);

  // past the interval a change computes at once; a leave of node-3 gains its share
  tracker.setMembers(equal(['node-1', 'node-2', 'node-4']));
  t.equal(tracker.recomputes, 3, 'past the interval: at once');
  const three = expectOwned(['node-1', 'node-2', 'node-4']);
  t.ok(sameArray(changes[2]!.gained, diff(four.pks, three.pks).gained));
  t.equal(changes[2]!.lost.length, 0, 'a leave only gains pks');
  t.ok(changes[2]!.gained.length > 0);

  // the same ids and weights are no change; a weight change is
  time.advance(1000);
  tracker.setMembers([...equal(['node-1', 'node-2']), { id: 'node-4', weight: 1 }]);
  t.equal(tracker.recomputes, 3, 'same ids and weights');
  time.advance(1000);
  const ringsBefore = rings.length;
  tracker.setMembers([...equal(['node-1', 'node-2']), { id: 'node-4', weight: 2 }]);
  t.equal(tracker.recomputes, 4, 'a weight change is a change');
  t.equal(rings.length, ringsBefore + 1);

  // leaving the member list: this node owns nothing and loses everything
  time.advance(1000);
  const ownedBeforeLeave = tracker.owned().pks;
  const nChanges = changes.length;
  tracker.setMembers(equal(['node-2', 'node-4']));
  t.equal(tracker.owned().pks.length, 0, 'not a member: owns nothing');
  t.ok(sameArray(changes[nChanges]!.lost, ownedBeforeLeave), 'lost everything');
  t.equal(changes[nChanges]!.gained.length, 0);

  t.throws(() => tracker.setMembers(equal(['a', 'a'])), /duplicate/, 'a bad list throws at once');

  // close cancels a pending trailing recompute
  tracker.setMembers(equal(['node-1']));
  t.equal(time.pending(), 1);
  tracker.stop();
  t.equal(time.pending(), 0, 'timer cancelled');
  time.advance(10_000);
  tracker.stop();
  t.equal(tracker.owned().pks.length, 0, 'nothing ran after close');
});

t.test('OwnershipTracker: a node that is not a member owns nothing and emits nothing', async (t) => {
  const small = new PkUniverse(1, 5_000);
  const time = fakeTime();
  const tracker = new OwnershipTracker(small, 'joining', time);
  let events = 0;
  tracker.on('change', () => events++);
  tracker.setMembers(equal(['node-1', 'node-2']));
  t.equal(tracker.owned().pks.length, 0);
  t.equal(events, 0);
  t.equal(tracker.ring().size, 2);
  tracker.stop();
});

t.test('OwnershipTracker: an error in a trailing recompute is emitted, not thrown', async (t) => {
  const time = fakeTime();
  const tracker = new OwnershipTracker(new PkUniverse(1, 2_000), 'a', time);
  const errors: Error[] = [];
  tracker.on('error', (err) => errors.push(err));
  tracker.setMembers(equal(['a']));
  tracker.on('change', () => {
    throw new Error('listener failed');
  });
  tracker.setMembers(equal(['a', 'b']));
  time.advance(1000);
  t.equal(errors.length, 1);
  t.match(errors[0]!.message, /listener failed/);
  t.equal(tracker.ring().size, 2, 'the recompute itself completed');
  tracker.stop();
});

t.test('OwnershipTracker: real timers by default', async (t) => {
  const small = new PkUniverse(1, 1_000);
  const tracker = new OwnershipTracker(small, 'a', { minIntervalMs: 20 });
  const changed = new Promise<OwnershipChange>((resolve) => tracker.once('change', resolve));
  tracker.setMembers(equal(['a']));
  t.equal((await changed).gained.length, 1_000, 'alone it owns everything');
  const second = new Promise<OwnershipChange>((resolve) => tracker.once('change', resolve));
  tracker.setMembers(equal(['a', 'b']));
  const change = await second;
  t.ok(change.lost.length > 0 && change.gained.length === 0);
  tracker.stop();
});

t.test('OwnershipTracker: orphaned = the gained pks whose last owner is no longer a member', async (t) => {
  const small = new PkUniverse(1, 5_000);
  const time = fakeTime();
  const tracker = new OwnershipTracker(small, 'a', { minIntervalMs: 1000, ...time });
  const changes: OwnershipChange[] = [];
  tracker.on('change', (c) => changes.push(c));
  tracker.setMembers(equal(['a']));
  t.ok(sameArray(changes[0]!.orphaned, changes[0]!.gained), 'alone on an empty ring: everything is orphaned');

  const joining = new OwnershipTracker(small, 'b', { minIntervalMs: 1000, ...time });
  joining.on('change', (c) => changes.push(c));
  joining.setMembers(equal(['a', 'b']));
  t.ok(changes[1]!.gained.length > 0, 'a node joining a live member gains pks');
  t.equal(changes[1]!.orphaned.length, 0, 'none orphaned: their owner is still a member');

  time.advance(1000);
  joining.setMembers(equal(['b']));
  const leave = changes[2]!;
  t.ok(leave.gained.length > 0 && sameArray(leave.orphaned, leave.gained), "the leaver's pks are orphaned");
  tracker.stop();
  joining.stop();
});
