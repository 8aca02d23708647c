// Membership on a real Redis: join, a graceful leave with no pk unowned at any moment, a deleted
// key re-announced, a Redis restart survived, clusters kept apart, duplicate NODE_IDs refused
// (in-process and as real `influencer-node start` processes), and garbage member keys ignored.
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import type { Redis } from 'ioredis';
import { viewHash, type RingMember } from '../../../lib/cluster/card.js';
import { nodeKey } from '../../../lib/shared/keys.js';
import { createLogger } from '../../../lib/shared/log.js';
import { DuplicateNodeError, Membership } from '../../../lib/cluster/membership.js';
import { readMembers } from '../../../lib/cluster/member-view.js';
import { OwnershipTracker } from '../../../lib/ring/ownership.js';
import { PkUniverse } from '../../../lib/ring/pk-universe.js';
import { connectRedis, createRedis } from '../../../lib/shared/redis.js';
import type { Ring } from '../../../lib/ring/ring.js';
import { startCluster, PK_MIN } from '../../helpers/cluster.js';
import { stopChild, waitExit } from '../../kit/children.js';
import { sleep, until } from '../../kit/wait.js';
import { startRedis, type Server } from '../../kit/servers.js';

const log = createLogger('silent');
const TTL = 1500;
const ids = (members: readonly RingMember[]): string[] => members.map((m) => m.id);
const newCluster = (): string => `t${randomBytes(4).toString('hex')}`;

let server: Server;
t.before(async () => {
  server = await startRedis();
});
t.teardown(async () => {
  await server.stop();
});

interface Member {
  m: Membership;
  redis: Redis;
  sub: Redis;
  /** every `members` event, in order */
  events: RingMember[][];
  errors: Error[];
  close(): Promise<void>;
}

/** Claims the card and becomes active, as a node does once it is ready to poll. */
async function join(m: Membership): Promise<void> {
  await m.start();
  await m.activate();
}

/** A Membership in this process on its own two connections, closed when the test ends. */
async function member(
  t: Test,
  cluster: string,
  id: string,
  opts: { ttlMs?: number; start?: boolean } = {},
): Promise<Member> {
  const redis = createRedis(server.url, log, `${cluster}:${id}`);
  const sub = createRedis(server.url, log, `${cluster}:${id}:sub`);
  await Promise.all([connectRedis(redis, server.url, log), connectRedis(sub, server.url, log)]);
  const m = new Membership(redis, sub, { cluster, id, weight: 1, ttlMs: opts.ttlMs ?? TTL }, log);
  const events: RingMember[][] = [];
  const errors: Error[] = [];
  m.on('members', (members: RingMember[]) => events.push(members));
  m.on('error', (err: Error) => errors.push(err));
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closed ??= m.stop().finally(() => {
      redis.disconnect();
      sub.disconnect();
    }));
  t.teardown(close);
  if (opts.start !== false) await join(m);
  return { m, redis, sub, events, errors, close };
}

/** Every member sees exactly `expected` on its ring. */
function agree(members: Member[], expected: string[]): boolean {
  const want = JSON.stringify([...expected].sort());
  return members.every((x) => JSON.stringify(ids(x.m.ringMembers)) === want);
}

t.test("join: the second member appears in the first one's members event and both views agree", async (t) => {
  const cluster = newCluster();
  const a = await member(t, cluster, 'a');
  t.same(ids(a.m.ringMembers), ['a'], 'alone at first');
  const b = await member(t, cluster, 'b');
  await until(() => a.events.some((e) => ids(e).includes('b')), 5000, "b in a's members event");
  t.same(ids(a.events[a.events.length - 1]), ['a', 'b'], "a's last event holds both");
  await until(() => agree([a, b], ['a', 'b']), 5000, 'b sees both');
  t.equal(viewHash(a.m.ringMembers), viewHash(b.m.ringMembers), 'same view hash');
  const cards = await readMembers(a.redis, cluster);
  t.same(
    cards.map((c) => c.ok && c.card.state),
    ['active', 'active'],
    'both cards active',
  );
});

t.test(
  'graceful leave: at every moment (sampled every 20 ms) the union of owned sets covers the universe',
  async (t) => {
    const cluster = newCluster();
    const universe = new PkUniverse(PK_MIN, PK_MIN + 1999);
    // wired as lib/node.ts wires them: members → tracker → view on the card; a leaver ignores events
    const nodes = await Promise.all(
      ['a', 'b', 'c'].map(async (id) => {
        const x = await member(t, cluster, id, { start: false });
        const tracker = new OwnershipTracker(universe, id);
        const node = { id, x, tracker, leaving: false, live: true };
        x.m.on('members', (members: RingMember[]) => {
          if (!node.leaving) tracker.setMembers(members);
        });
        tracker.on('ring', (ring: Ring) => x.m.setView(ring.members));
        t.teardown(() => tracker.stop());
        return node;
      }),
    );
    for (const n of nodes) await join(n.x.m);
    const uncovered = (): number => {
      const seen = new Uint8Array(universe.size);
      for (const n of nodes) if (n.live) for (const pk of n.tracker.owned().pks) seen[pk - PK_MIN] = 1;
      return seen.reduce((missing, v) => missing + (v ? 0 : 1), 0);
    };
    await until(
      async () => {
        const cards = await readMembers(nodes[0].x.redis, cluster);
        const expected = viewHash(nodes.map((n) => ({ id: n.id, weight: 1 })));
        return cards.length === 3 && cards.every((c) => c.ok && c.card.state === 'active' && c.card.view === expected);
      },
      10_000,
      'three members whose cards show the same view',
    );
    t.equal(uncovered(), 0, 'covered before the leave');

    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        samples.push(uncovered());
        await sleep(20);
      }
    })();
    const c = nodes[2];
    c.leaving = true;
    await c.x.m.setState('leaving');
    const handed = await c.x.m.awaitHandover(TTL + 5000);
    c.live = false;
    await c.x.close();
    c.tracker.stop();
    await sleep(300);
    sampling = false;
    await sampler;

    t.ok(handed, 'the others confirmed the handover');
    t.ok(samples.length >= 10, `${samples.length} samples during the leave`);
    t.equal(Math.max(...samples), 0, 'no pk unowned at any sample');
    const [a, b] = nodes;
    t.same(ids(a.x.m.ringMembers), ['a', 'b'], "a's ring lost c");
    t.same(ids(b.x.m.ringMembers), ['a', 'b'], "b's ring lost c");
    t.equal(
      a.tracker.owned().pks.length + b.tracker.owned().pks.length,
      universe.size,
      'a and b split the universe exactly',
    );
    t.equal(await a.x.redis.exists(nodeKey(cluster, 'c')), 0, "c's key is gone");
  },
);

t.test('a member whose key is deleted (Redis flush) announces itself again within a heartbeat', async (t) => {
  const cluster = newCluster();
  const a = await member(t, cluster, 'a');
  const b = await member(t, cluster, 'b');
  await until(() => agree([a, b], ['a', 'b']), 5000, 'both see both');
  const before = await readMembers(b.redis, cluster);
  const startedBefore = before.find((c) => c.ok && c.card.id === 'a');
  await b.redis.del(nodeKey(cluster, 'a'));
  const deletedAt = Date.now();
  const took = await until(async () => (await b.redis.exists(nodeKey(cluster, 'a'))) === 1, 5000, "a's key back");
  t.ok(took <= TTL / 3 + 1000, `back after ${Date.now() - deletedAt} ms (heartbeat every ${TTL / 3} ms)`);
  const after = (await readMembers(b.redis, cluster)).find((c) => c.ok && c.card.id === 'a');
  t.ok(after?.ok && after.card.state === 'active', 'with an active card');
  t.equal(
    after?.ok && after.card.started,
    startedBefore?.ok && startedBefore.card.started,
    'the same member, not a new one',
  );
  await until(() => agree([a, b], ['a', 'b']), 5000, 'both see both again');
  t.pass('views agree again');
});

t.test('Redis restarted (data gone): every member reappears on its own and the views converge', async (t) => {
  const cluster = newCluster();
  const members = await Promise.all(['a', 'b', 'c'].map((id) => member(t, cluster, id)));
  await until(() => agree(members, ['a', 'b', 'c']), 5000, 'all see all');
  const probe = createRedis(server.url, log, 'probe');
  t.teardown(() => probe.disconnect());
  await connectRedis(probe, server.url, log);

  const restartedAt = Date.now();
  await server.restart();
  t.equal(await probe.dbsize().catch(() => 0), 0, 'the restarted Redis is empty');
  await until(
    async () => {
      try {
        return (await readMembers(probe, cluster)).filter((c) => c.ok && c.card.state === 'active').length === 3;
      } catch {
        return false;
      }
    },
    15_000,
    'three cards again',
  );
  const took = Date.now() - restartedAt;
  await until(() => agree(members, ['a', 'b', 'c']), 10_000, 'views converge');
  t.pass(`all three cards back ${took} ms after the restart began; views agree`);

  // down for longer than the TTL: members keep their last view, then come back
  const events = members.map((x) => x.events.length);
  server.process!.kill('SIGKILL');
  await sleep(2 * TTL);
  t.ok(agree(members, ['a', 'b', 'c']), 'while Redis is down every member keeps its last view');
  t.same(
    members.map((x) => x.events.length),
    events,
    'and emits no change',
  );
  await server.restart();
  await until(
    async () => {
      try {
        return (await readMembers(probe, cluster)).filter((c) => c.ok).length === 3;
      } catch {
        return false;
      }
    },
    20_000,
    'three cards after a long outage',
  );
  await until(() => agree(members, ['a', 'b', 'c']), 10_000, 'views converge after a long outage');
  t.same(
    members.flatMap((x) => x.errors),
    [],
    'no error events',
  );
});

t.test('two clusters on one Redis never see each other', async (t) => {
  const x = newCluster();
  const y = `${x}0`; // also a prefix of it: no prefix match may leak
  const xa = await member(t, x, 'a');
  const xb = await member(t, x, 'b');
  const ya = await member(t, y, 'a');
  const yc = await member(t, y, 'c');
  await until(() => agree([xa, xb], ['a', 'b']) && agree([ya, yc], ['a', 'c']), 5000, 'each cluster sees its own two');
  await sleep(TTL); // a few scans more
  t.ok(agree([xa, xb], ['a', 'b']), `cluster ${x}: a, b`);
  t.ok(agree([ya, yc], ['a', 'c']), `cluster ${y}: a, c (the same id "a" in both)`);
  t.notOk(
    [xa, xb].some((m) => m.events.flatMap(ids).includes('c')),
    'x never saw c',
  );
  t.notOk(
    [ya, yc].some((m) => m.events.flatMap(ids).includes('b')),
    'y never saw b',
  );
  t.same(
    (await readMembers(xa.redis, x)).map((c) => c.ok && c.card.id),
    ['a', 'b'],
  );
});

t.test('duplicate NODE_ID in process: refused while the first lives, accepted once its key expired', async (t) => {
  const cluster = newCluster();
  const first = await member(t, cluster, 'dup');
  const second = await member(t, cluster, 'dup', { start: false });
  const err = await second.m.start().then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof DuplicateNodeError, 'start() fails with DuplicateNodeError');
  t.match((err as Error).message, /NODE_ID dup is already in use/);
  await second.close();
  t.equal(await first.redis.exists(nodeKey(cluster, 'dup')), 1, 'the refused member did not delete the live key');
  const card = (await readMembers(first.redis, cluster))[0];
  t.ok(card.ok && card.card.state === 'active', 'the first is still active');

  // the first stops heartbeating without a goodbye (as if frozen or killed)
  first.redis.disconnect();
  first.sub.disconnect();
  const probe = createRedis(server.url, log, 'probe');
  t.teardown(() => probe.disconnect());
  await connectRedis(probe, server.url, log);
  await until(async () => (await probe.exists(nodeKey(cluster, 'dup'))) === 0, TTL + 3000, 'the key expired');
  const third = await member(t, cluster, 'dup');
  t.equal(third.m.currentState, 'active', 'a new member with that id starts');
});

t.test(
  "a member whose key expired while its id was taken by another process never overwrites the newcomer's card",
  async (t) => {
    const cluster = newCluster();
    const key = nodeKey(cluster, 'dup');
    const old = await member(t, cluster, 'dup');
    const probe = createRedis(server.url, log, 'probe');
    t.teardown(() => probe.disconnect());
    await connectRedis(probe, server.url, log);
    const startedOf = async (): Promise<number | null> => {
      const card = (await readMembers(probe, cluster))[0];
      return card?.ok ? card.card.started : null;
    };
    const oldStarted = await startedOf();
    await sleep(5); // distinct start times
    // the old member "pauses" past its TTL: its key is gone and a new process claims the id
    let newcomer: Member | undefined;
    for (let attempt = 0; !newcomer && attempt < 5; attempt++) {
      const x = await member(t, cluster, 'dup', { start: false });
      await probe.del(key);
      // the old member's heartbeat may re-claim in between (once in a few hundred runs): try again
      if (
        await join(x.m).then(
          () => true,
          (err: unknown) => {
            if (err instanceof DuplicateNodeError) return false;
            throw err;
          },
        )
      )
        newcomer = x;
      else await x.close();
    }
    t.equal(newcomer?.m.currentState, 'active', 'a newcomer with the id starts');
    const newStarted = await startedOf();
    t.not(newStarted, oldStarted, 'the newcomer holds the key');
    const seen = new Set<number | null>();
    const end = Date.now() + 3 * (TTL / 3) + 200; // the old member heartbeats three times meanwhile
    while (Date.now() < end) {
      seen.add(await startedOf());
      await sleep(20);
    }
    t.same([...seen], [newStarted], "the card stays the newcomer's: the old member's heartbeats do not overwrite it");
    await old.close();
    t.equal(await startedOf(), newStarted, "closing the old member leaves the newcomer's key alone");
  },
);

t.test(
  "duplicate NODE_ID as processes: a SIGKILLed first's card from another host keeps a second `start` out (exit 1) until its TTL",
  async (t) => {
    const ttl = 8000; // the second process must get as far as Redis while the key lives (1-4 s here)
    const t0 = Date.now();
    const c = await startCluster(t, { pks: 100, intervalMs: 2000, ttlMs: ttl });
    t.comment(`cluster up in ${Date.now() - t0} ms`);
    const key = nodeKey(c.svc.cluster, 'dup');
    const activeCard = async (pid: number, storing = false): Promise<boolean> => {
      const card = (await readMembers(c.redis, c.svc.cluster)).find((x) => x.ok && x.card.id === 'dup');
      return (
        !!card?.ok &&
        card.card.state === 'active' &&
        card.card.pid === pid &&
        (!storing || Number(card.card.stats.stored) > 0)
      );
    };
    const first = c.spawnNode('dup');
    // a node at work (polling and storing), not one still setting up
    await until(() => activeCard(first.pid!, true), 30_000, 'the first node active and storing samples');
    t.comment(`first node active at ${Date.now() - t0} ms`);
    first.kill('SIGKILL');
    await waitExit(first);
    const killedAt = Date.now();
    // as if it ran on another host: only a card of this host's own dead process may be taken over
    // (test/scenarios/systemd-notify.test.ts has that case)
    const card = JSON.parse((await c.redis.get(key))!);
    await c.redis.set(key, JSON.stringify({ ...card, host: 'another-host' }), 'KEEPTTL');

    const second = c.spawnNode('dup');
    let tookOver = false;
    while (second.exitCode === null && !tookOver && Date.now() - killedAt < 30_000) {
      tookOver = await activeCard(second.pid!);
      await sleep(50);
    }
    if (tookOver) {
      t.fail(
        `the second start reached Redis ${Date.now() - killedAt} ms after the kill, after the ${ttl} ms key expired: the machine is too busy for this test`,
      );
      return;
    }
    const code = await waitExit(second, 5000);
    t.comment(`the second start gave up ${Date.now() - killedAt} ms after the kill`);
    t.ok(await activeCard(first.pid!), "the killed node's key still lived when the second gave up");
    t.equal(code, 1, 'exit code 1');
    const lines = second
      .output()
      .split('\n')
      .filter((l) => l.startsWith('influencer-node: '));
    t.equal(lines.length, 1, 'one plain message line');
    t.match(
      lines[0] ?? '',
      /^influencer-node: NODE_ID dup is already in use in cluster \S+ \(.* pid \d+, heartbeat \d+ s ago\); choose another NODE_ID or wait: its key expires in \d+\.\d s/,
    );

    await until(async () => (await c.redis.exists(key)) === 0, ttl + 5000, "the killed node's key to expire");
    const expiredAfter = Date.now() - killedAt;
    t.ok(expiredAfter <= ttl + 1000, `key gone ${expiredAfter} ms after the kill (TTL ${ttl} ms)`);
    const third = c.spawnNode('dup');
    await until(() => activeCard(third.pid!), 30_000, 'the third node active');
    t.comment(`third node active at ${Date.now() - t0} ms`);
    t.equal(await stopChild(third), 0, 'the third runs and stops cleanly');
    t.comment(`third node stopped at ${Date.now() - t0} ms`);
  },
);

t.test('garbage in member keys never crashes a member and is never on the ring', async (t) => {
  const cluster = newCluster();
  const a = await member(t, cluster, 'a');
  const junk: Array<[string, string]> = [
    ['junk', 'not json'],
    ['old', '{"id":"old"}'],
    ['array', '[1,2,3]'],
    ['null', 'null'],
    [
      'other',
      JSON.stringify({
        format: 1,
        id: 'someone',
        host: 'h',
        pid: 1,
        version: '0',
        weight: 1,
        state: 'active',
        started: 0,
        heartbeat: 0,
        ttlMs: 1,
        view: 'x',
        stats: {},
      }),
    ],
    [
      'neg',
      JSON.stringify({
        format: 1,
        id: 'neg',
        host: 'h',
        pid: 1,
        version: '0',
        weight: -1,
        state: 'active',
        started: 0,
        heartbeat: 0,
        ttlMs: 1,
        view: 'x',
        stats: {},
      }),
    ],
    [
      'weird',
      JSON.stringify({
        format: 1,
        id: 'weird',
        host: 'h',
        pid: 1,
        version: '0',
        weight: 1,
        state: 'dancing',
        started: 0,
        heartbeat: 0,
        ttlMs: 1,
        view: 'x',
        stats: {},
      }),
    ],
    ['big', 'x'.repeat(100_000)],
  ];
  for (const [id, value] of junk) await a.redis.set(nodeKey(cluster, id), value, 'PX', 60_000);
  await a.redis.hset(nodeKey(cluster, 'hash'), 'f', 'v'); // a key of the wrong type
  await a.redis.pexpire(nodeKey(cluster, 'hash'), 60_000);
  const b = await member(t, cluster, 'b');
  await until(() => agree([a, b], ['a', 'b']), 5000, 'both see both');
  await sleep(TTL); // a few scans with the garbage present
  t.ok(agree([a, b], ['a', 'b']), 'only a and b are on the ring');
  t.same(
    [...a.events, ...b.events].flatMap(ids).filter((id) => id !== 'a' && id !== 'b'),
    [],
    'no garbage id in any members event',
  );
  // members read the member index; `status` scans the keys and shows garbage as unreadable
  const unreadable = (await readMembers(b.redis, cluster, 'scan'))
    .filter((c) => !c.ok)
    .map((c) => c.id)
    .sort();
  t.same(unreadable, junk.map(([id]) => id).sort(), 'every garbage card is seen as unreadable');
  t.same([...a.errors, ...b.errors], [], 'no error events');
  t.equal(a.m.currentState, 'active');
  t.equal(b.m.currentState, 'active');
});
