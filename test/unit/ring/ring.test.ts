import t from 'tap';
import crypto from 'node:crypto';
import { MAX_RING_POINTS, MAX_WEIGHT, Ring, VNODES_PER_WEIGHT, type RingMember } from '../../../lib/ring/ring.js';
import { PkUniverse, hashPk } from '../../../lib/ring/pk-universe.js';
import { ownedCounts, sweep } from '../../../lib/ring/ownership.js';

const equal = (ids: string[]): RingMember[] => ids.map((id) => ({ id, weight: 1 }));
const seqIds = (n: number) => Array.from({ length: n }, (_, i) => `node-${i + 1}`);
const randomIds = (n: number, seed: string) =>
  Array.from({ length: n }, (_, i) => crypto.createHash('sha1').update(`${seed}-${i}`).digest('hex').slice(0, 10));

const universe = new PkUniverse();

t.test('every node builds the same ring whatever the member order', async (t) => {
  // integer-like ids ("7", "10") are ordered first by Object.keys: the ring must not care.
  const members: RingMember[] = [
    { id: 'node-b', weight: 1 },
    { id: '10', weight: 2 },
    { id: 'node-a', weight: 1 },
    { id: '7', weight: 0.5 },
    { id: 'zeta:3000', weight: 1 },
  ];
  const orders = [
    members,
    members.slice().reverse(),
    [members[2]!, members[4]!, members[0]!, members[3]!, members[1]!],
  ];
  const rings = orders.map((m) => new Ring(m));
  const owners = rings.map((r) => sweep(universe, r));
  for (const r of rings.slice(1)) {
    t.same(r.ids, rings[0]!.ids);
    t.same(r.points, rings[0]!.points);
    t.same(r.pointOwner, rings[0]!.pointOwner);
  }
  t.same(rings[0]!.ids, ['10', '7', 'node-a', 'node-b', 'zeta:3000'], 'members sorted by id');
  for (const o of owners.slice(1))
    t.ok(Buffer.compare(Buffer.from(o.buffer), Buffer.from(owners[0]!.buffer)) === 0, 'same owner for every pk');
  let mismatches = 0;
  for (let pk = 1_000_000; pk < 1_000_000 + 20_000; pk++) {
    const o = rings[0]!.ownerOf(pk);
    if (rings[1]!.ownerOf(pk) !== o || rings[2]!.ownerOf(pk) !== o) mismatches++;
  }
  t.equal(mismatches, 0, 'ownerOf agrees across orders');
});

t.test('explicit vnode count: points = vnodes * 4 for every member', async (t) => {
  t.equal(VNODES_PER_WEIGHT, 512);
  for (const n of [1, 2, 7, 14, 28]) {
    const ring = new Ring(equal(seqIds(n)));
    for (const id of ring.ids) t.equal(ring.pointsOf(id), VNODES_PER_WEIGHT * 4, `n=${n} ${id}`);
    t.equal(ring.points.length, n * VNODES_PER_WEIGHT * 4);
  }
  // hashring's default (40): its weight arithmetic would give floor(40·7·(1/7)) = 39 vnodes.
  const forty = new Ring(equal(seqIds(7)), { vnodesPerWeight: 40 });
  for (const id of forty.ids) t.equal(forty.pointsOf(id), 160, `40 vnodes stay 40 (${id})`);
  const fractional = new Ring([
    { id: 'a', weight: 0.1 },
    { id: 'b', weight: 2.5 },
    { id: 'c', weight: 3 },
  ]);
  t.equal(fractional.pointsOf('a'), Math.round(0.1 * VNODES_PER_WEIGHT) * 4);
  t.equal(fractional.pointsOf('b'), Math.round(2.5 * VNODES_PER_WEIGHT) * 4);
  t.equal(fractional.pointsOf('c'), 3 * VNODES_PER_WEIGHT * 4);
  t.equal(fractional.pointsOf('nobody'), 0);
  t.same(Array.from(fractional.vnodes), [51, 1280, 1536]);
  t.equal(new Ring([{ id: 'tiny', weight: 0.1 }], { vnodesPerWeight: 1 }).pointsOf('tiny'), 4, 'at least one vnode');
  for (let i = 1; i < fractional.points.length; i++) {
    if (fractional.points[i - 1]! > fractional.points[i]!) t.fail('points not sorted');
  }
});

t.test('a weight-2 member gets about twice the share', async (t) => {
  const ring = new Ring([...equal(seqIds(4)), { id: 'heavy', weight: 2 }]);
  const counts = ownedCounts(universe, ring);
  const heavy = counts[ring.indexOf('heavy')]!;
  const others = seqIds(4).map((id) => counts[ring.indexOf(id)]!);
  const mean = others.reduce((a, b) => a + b, 0) / others.length;
  t.comment(`heavy ${heavy}, others ${others.join(' ')} → ratio ${(heavy / mean).toFixed(3)}`);
  t.ok(Math.abs(heavy / mean - 2) < 0.2, `ratio ${heavy / mean} ≈ 2`);
  t.ok(Math.abs(heavy / universe.size - 1 / 3) < 0.033, 'heavy share ≈ 1/3');
});

t.test('hashOf is hashring hashValue = the universe hash; empty ring owns nothing', async (t) => {
  const ring = new Ring(equal(['a']));
  for (const pk of [0, 1, 1_000_000, 1_234_567, 1_999_999, -5]) t.equal(ring.hashOf(pk), hashPk(pk), `pk ${pk}`);
  for (const pk of [1, 2, 3]) t.equal(hashPk(pk, 'createHash'), hashPk(pk, 'hash'));
  for (let i = 0; i < 1000; i += 97) t.equal(universe.sortedHashes[i], ring.hashOf(universe.sortedPks[i]!));
  const empty = new Ring([]);
  t.equal(empty.ownerOf(1_000_000), undefined);
  t.equal(empty.points.length, 0);
  t.equal(empty.size, 0);
  t.ok(
    sweep(universe, empty).every((o) => o === 0xffff),
    'no owner',
  );
});

t.test('bad member lists are refused with a clear error', async (t) => {
  t.throws(() => new Ring(equal(['a', 'b', 'a'])), /duplicate member id "a"/);
  t.throws(() => new Ring([{ id: 'a', weight: 0 }]), /^member a: weight must be a number from 0.1 to 16, got 0$/);
  t.throws(() => new Ring([{ id: 'a', weight: 0.05 }]), /weight must be a number from 0.1 to 16/);
  t.throws(() => new Ring([{ id: 'a', weight: 1000 }]), /weight must be a number from 0.1 to 16, got 1000/);
  t.throws(() => new Ring([{ id: 'a', weight: Number.NaN }]), /got NaN/);
  t.throws(() => new Ring([{ id: '', weight: 1 }]), /non-empty string/);
  t.throws(() => new Ring(equal(['a']), { vnodesPerWeight: 0 }), /vnodesPerWeight/);
  t.throws(() => new PkUniverse(0, 2 ** 21), /at most 2097152/);
  t.throws(() => new PkUniverse(5, 4), /empty/);
  t.throws(() => new PkUniverse(1.5, 4), /32-bit integers/);
  t.throws(() => new PkUniverse(0, 2 ** 31), /32-bit integers/);
  t.ok(universe.has(1_000_000) && universe.has(1_999_999));
  t.notOk(universe.has(999_999) || universe.has(2_000_000) || universe.has(1_000_000.5));
  const ring = new Ring(equal(['a', 'b']));
  t.ok(ring.has('a'));
  t.notOk(ring.has('c'));
  t.equal(ring.indexOf('c'), -1);
});

t.test('at most MAX_RING_POINTS points: the heaviest members, then the greatest ids, are left off', async (t) => {
  const many = equal(seqIds(200));
  const ring = new Ring([...many, { id: 'heavy', weight: MAX_WEIGHT }]);
  t.ok(ring.points.length <= MAX_RING_POINTS, `${ring.points.length} points`);
  t.equal(ring.left[0]?.id, 'heavy', 'the heaviest is left off first');
  const kept = MAX_RING_POINTS / (4 * VNODES_PER_WEIGHT);
  t.equal(ring.size, kept, `${kept} members of weight 1 fill it`);
  t.same(
    ring.ids,
    many
      .map((m) => m.id)
      .sort()
      .slice(0, kept),
    'the members with the smallest ids stay',
  );
  t.same(new Ring([...many].reverse()).ids, ring.ids, 'whatever the order they are given in');
  t.same(new Ring(equal(seqIds(3))).left, [], 'a ring of a few members leaves nobody off');
});

t.test('2..32 equal members: every share within ±10 % of fair', async (t) => {
  const worst: string[] = [];
  for (const [name, ids] of [
    ['node-i', seqIds(32)],
    ['random', randomIds(32, 'spread')],
  ] as const) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let n = 2; n <= 32; n++) {
      const counts = ownedCounts(universe, new Ring(equal(ids.slice(0, n))));
      const fair = universe.size / n;
      for (const c of counts) {
        lo = Math.min(lo, c / fair);
        hi = Math.max(hi, c / fair);
      }
    }
    worst.push(`${name}: ${lo.toFixed(3)}..${hi.toFixed(3)}`);
    t.ok(lo >= 0.9 && hi <= 1.1, `${name} ids: shares ${lo.toFixed(3)}..${hi.toFixed(3)} of fair`);
  }
  t.comment(`share / fair, n = 2..32: ${worst.join(', ')}`);
});
