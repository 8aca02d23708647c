// A node's parts are services started in order and stopped in reverse (lib/shared/services.ts): the
// order that makes a stop lose nothing (hand over, stop polling, flush, delete the card) follows from
// the order of start, and a stop while the node is still starting stops only what started.
import t from 'tap';
import { startCluster, PK_MIN } from '../helpers/cluster.js';
import { InfluencerNode } from '../../lib/node.js';
import { createLogger } from '../../lib/shared/log.js';
import { readMembers } from '../../lib/cluster/member-view.js';
import { nodeKey } from '../../lib/shared/keys.js';
import { until } from '../kit/wait.js';
import { freePort } from '../../lib/ops/ports.js';

const ORDER = [
  'watchdog',
  'metrics',
  'connections',
  'membership',
  'writer',
  'rebuild',
  'closer',
  'retention',
  'ranking',
  'source',
  'polling',
  'ownership',
  'ring',
  'suspicious',
];

t.test('a node starts its services in order and stops them in reverse, its card last of the node parts', async (t) => {
  const c = await startCluster(t, {
    pks: 200,
    intervalMs: 1000,
    ttlMs: 3000,
    extraEnv: { METRICS_PORT: String(await freePort()) },
  });
  const node = await c.startNode('a');
  t.same(node.services.started, ORDER, 'started in the documented order');
  await until(async () => (await c.totals.read(PK_MIN)) !== null, 15_000, 'a sample of the first pk counted');
  const cards = await readMembers(c.redis, c.svc.cluster);
  t.match(
    cards.map((x) => x.ok && x.card.state),
    ['active'],
    'its card says active',
  );
  await node.stop();
  t.same(node.services.stopped, [...ORDER].reverse(), 'stopped in reverse');
  t.equal(await c.redis.exists(nodeKey(c.svc.cluster, 'a')), 0, 'its card deleted');
  t.equal(node.stats().writeQueue, 0, 'every buffered sample logged before the card went');
});

t.test('a stop while the node waits for its servers stops only what had started, and start() returns', async (t) => {
  const c = await startCluster(t, { pks: 20, intervalMs: 1000, ttlMs: 3000 });
  // MongoDB that never answers: the node waits at its connections
  const config = { ...c.config('b'), mongoUrl: 'mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200' };
  const node = new InfluencerNode(config, createLogger('silent'));
  const starting = node.start();
  await until(() => node.services.started.includes('connections'), 10_000, 'waiting for the servers');
  await node.stop();
  await starting;
  t.same(node.services.started, ['watchdog', 'connections'], 'nothing after the connections started');
  t.same(node.services.stopped, ['connections', 'watchdog'], 'what started stopped, in reverse');
  t.equal(await c.redis.exists(nodeKey(c.svc.cluster, 'b')), 0, 'no card was ever claimed');
});
