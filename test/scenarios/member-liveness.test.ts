// Whether a member is alive is Redis's answer (its card key has not expired), not its card's heartbeat
// time read against this node's clock: with the two hosts' clocks a minute apart, a live member must
// still hold a period's close, keep the previous key layout in force and show healthy, and a member
// whose key is gone (or was never given a TTL) must not.
import t from 'tap';
import { createLogger } from '../../lib/shared/log.js';
import { loadConfig } from '../../lib/ops/config.js';
import { readStatus } from '../../lib/cluster/status.js';
import { memberIndexKey, nodeKey } from '../../lib/shared/keys.js';
import { Keyspace } from '../../lib/storage/state/keyspace.js';
import { TotalsRebuilder } from '../../lib/storage/jobs/rebuild.js';
import { sample, storageKit, HOUR, MIN } from '../helpers/storage.js';

const log = createLogger('silent');
/** how far the two hosts' clocks are apart: CLOCK_SKEW_MS allows up to an hour */
const SKEW = 60_000;
const TTL = 5000;
const T0 = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;

function card(id: string, heartbeat: number, extra: Record<string, unknown> = {}) {
  return {
    format: 1,
    id,
    host: 'elsewhere',
    pid: 1,
    version: '0',
    weight: 1,
    state: 'active',
    started: heartbeat - MIN,
    heartbeat,
    ttlMs: TTL,
    view: '',
    keyspace: 2,
    stats: {},
    ...extra,
  };
}

t.test("a period's close: a live member behind the local clock holds it, a gone one does not", async (t) => {
  const k = await storageKit(t, { start: T0 });
  await k.store([0, 1, 2].map((m) => sample(1_000_001, T0 + m * MIN, 1000 + m)));
  const end = T0 + HOUR;
  // this node's clock a minute ahead of the member's, past the period's end and grace
  k.clock.now = end + 2 * MIN;
  const slow = card('slow', k.clock.now - SKEW, { stats: { loggedThrough: end - MIN } });
  await k.redis.set(nodeKey(k.cluster, 'slow'), JSON.stringify(slow), 'PX', TTL);
  await k.redis.sadd(memberIndexKey(k.cluster), 'slow');
  t.equal(await k.closer.runOnce(), 'waiting', 'the live member has samples of the period not yet logged');

  // its key expires (the member died): it holds nothing up, though its card claimed a later time
  await k.redis.set(nodeKey(k.cluster, 'slow'), JSON.stringify({ ...slow, heartbeat: k.clock.now + SKEW }), 'PX', 50);
  await new Promise((r) => setTimeout(r, 150));
  t.equal(await k.closer.runOnce(), 'closed', 'a member whose key expired is not waited for');
});

t.test('a card key without a TTL is no live member, whatever time its heartbeat claims', async (t) => {
  const k = await storageKit(t, { start: T0 });
  await k.store([0, 1, 2].map((m) => sample(1_000_001, T0 + m * MIN, 1000 + m)));
  const end = T0 + HOUR;
  k.clock.now = end + 2 * MIN;
  const stuck = card('stuck', k.clock.now + SKEW, { stats: { loggedThrough: end - MIN } });
  await k.redis.set(nodeKey(k.cluster, 'stuck'), JSON.stringify(stuck));
  await k.redis.sadd(memberIndexKey(k.cluster), 'stuck');
  t.equal(await k.closer.runOnce(), 'closed', 'not waited for');
});

t.test('the previous key layout stays in force while a member of it lives, whatever the clocks', async (t) => {
  const k = await storageKit(t, { start: T0 });
  const keyspace = new Keyspace(k.redis, k.cluster, log);
  await k.redis.del(`${k.cluster}:keyspace`);
  const now = Date.now() + SKEW;
  const rebuilder = new TotalsRebuilder({ ...k.deps, keyspace }, { graceMs: 0, now: () => now });
  // a member of the previous version (its card names no keyspace) on a host a minute behind this one
  const previous = card('previous', Date.now() - SKEW, { keyspace: undefined });
  await k.redis.set(nodeKey(k.cluster, 'previous'), JSON.stringify(previous), 'PX', TTL);
  await k.redis.sadd(memberIndexKey(k.cluster), 'previous');
  t.equal(await rebuilder.runOnce(), 'previous', 'its layout kept while it lives');
  t.equal(await k.redis.get(`${k.cluster}:keyspace`), null, 'the keyspace not switched');

  await k.redis.pexpire(nodeKey(k.cluster, 'previous'), 1);
  await new Promise((r) => setTimeout(r, 100));
  t.not(await rebuilder.runOnce(), 'previous', 'switched once its key has expired');
  t.equal(await k.redis.get(`${k.cluster}:keyspace`), '2');
});

t.test('status: a live member on a skewed host is healthy, its heartbeat age by Redis', async (t) => {
  const k = await storageKit(t, { start: T0 });
  const config = loadConfig({}, { CLUSTER: k.cluster, PK_MIN: '1000000', PK_MAX: '1000999' });
  await k.redis.set(nodeKey(k.cluster, 'behind'), JSON.stringify(card('behind', Date.now() - SKEW)), 'PX', TTL);
  await k.redis.set(nodeKey(k.cluster, 'ahead'), JSON.stringify(card('ahead', Date.now() + SKEW)), 'PX', TTL);
  await k.redis.set(nodeKey(k.cluster, 'stuck'), JSON.stringify(card('stuck', Date.now())));
  const s = await readStatus(k.redis, config, Date.now());
  const row = (id: string) => s.members.find((m) => m.id === id);
  for (const id of ['behind', 'ahead']) {
    t.equal(row(id)?.healthy, true, `${id}: healthy`);
    t.ok((row(id)?.heartbeatAgeS ?? Infinity) <= 1, `${id}: heartbeat ${row(id)?.heartbeatAgeS} s ago`);
  }
  t.equal(row('stuck')?.healthy, false, 'a card without a TTL: not healthy');
  t.same(s.summary.unhealthy, ['stuck']);
});
