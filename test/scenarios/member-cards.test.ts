// Member cards that parse but that the ring refuses (weight below NODE_WEIGHT's minimum) or cannot
// afford (weights far past its maximum: millions of ring points): a running node keeps its ring,
// a node restarts with them present, and `status` and /api/cluster show them as unreadable.
import t from 'tap';
import { loadLayout } from '../../lib/storage/format/layout.js';
import { TimelineReader } from '../../lib/storage/read/reader.js';
import { viewHash } from '../../lib/cluster/card.js';
import { memberIndexKey, nodeKey } from '../../lib/shared/keys.js';
import { startApi } from '../../lib/read/api.js';
import { createLogger } from '../../lib/shared/log.js';
import type { ClusterStatus } from '../../lib/cluster/status.js';
import { runCli } from '../helpers/cli.js';
import { startCluster } from '../helpers/cluster.js';
import { sleep, until } from '../kit/wait.js';
import { stopChild } from '../kit/children.js';
import { connected } from '../kit/servers.js';

const PKS = 200;
const TTL = 1500;
const ABSURD: Record<string, number> = { tiny: 0.05, heavy: 1000, huge: 1e6 };

t.test("cards with weights out of NODE_WEIGHT's bounds are unreadable and kept off the ring", async (t) => {
  const c = await startCluster(t, { pks: PKS, intervalMs: 2000, ttlMs: TTL });
  const cluster = c.svc.cluster;
  const card = async (id: string) => {
    const raw = await c.redis.get(nodeKey(cluster, id));
    return raw === null ? null : (JSON.parse(raw) as { state: string; view: string; stats: { owned?: number } });
  };
  const alone = viewHash([{ id: 'a', weight: 1 }]);
  const ownsAll = async (): Promise<boolean> => {
    const a = await card('a');
    return a?.state === 'active' && a.view === alone && a.stats.owned === PKS;
  };
  let node = c.spawnNode('a');
  await until(ownsAll, 30_000, 'node a active, owning every pk');

  // written as a node writes its card: the key with a TTL and the id in the member index
  const now = Date.now();
  for (const [id, weight] of Object.entries(ABSURD)) {
    const value = {
      format: 1,
      id,
      host: 'h',
      pid: 1,
      version: '0.1.0',
      weight,
      state: 'active',
      started: now,
      heartbeat: now,
      ttlMs: 60_000,
      view: 'x',
      stats: {},
    };
    await c.redis.set(nodeKey(cluster, id), JSON.stringify(value), 'PX', 60_000);
  }
  await c.redis.sadd(memberIndexKey(cluster), ...Object.keys(ABSURD));
  await sleep(3 * TTL); // several membership scans with the cards present

  t.equal(node.exitCode, null, `node a still runs (${node.output().trim().split('\n').slice(-1)[0] ?? ''})`);
  t.ok(await ownsAll(), 'node a kept a ring of itself alone and owns every pk');

  const status = await runCli(['status', '--json'], c.env);
  t.equal(status.code, 0, `status exits 0 (${status.stderr.trim()})`);
  const s = JSON.parse(status.stdout || '{}') as ClusterStatus;
  t.same(s.summary?.unreadable?.slice().sort(), Object.keys(ABSURD).sort(), 'status shows the three as unreadable');
  for (const m of s.members?.filter((m) => !m.readable) ?? []) t.match(m.error, /weight/, `${m.id}: ${m.error}`);
  const table = await runCli(['status'], c.env);
  t.equal(table.code, 0, 'the table too');

  const { redis, db } = await connected(t, 'cards-api');
  const config = c.config('api');
  const reader = new TimelineReader(redis, db, await loadLayout(db, config), config.cluster);
  const deps = { config, redis, reader, log: createLogger('silent') };
  const api = await startApi(deps, { host: '127.0.0.1', port: 0 });
  t.teardown(() => api.stop());
  const res = await fetch(`${api.url}/api/cluster`);
  t.equal(res.status, 200, '/api/cluster answers');
  const body = (await res.json()) as ClusterStatus;
  t.same(body.summary?.unreadable?.slice().sort(), Object.keys(ABSURD).sort(), '/api/cluster shows them as unreadable');

  t.equal(await stopChild(node), 0, 'node a stops gracefully');
  node = c.spawnNode('a');
  await until(async () => (await ownsAll()) || node.exitCode !== null, 30_000, 'node a back');
  t.equal(node.exitCode, null, 'node a starts again with the cards present');
  t.ok(await ownsAll(), 'and owns every pk');
  t.equal(await stopChild(node), 0);
});
