// The faults of a Redis Cluster under load: a master SIGKILLed and its replica promoted, and slots
// moved between masters (redis-cli --cluster reshard) while the nodes write. Each returns the
// windows to check with their bound, as the other faults do (faults.ts).
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { clusterOk } from '../lib/ops/embedded/redis-cluster.js';
import { totalsTrusted } from '../lib/storage/state/totals-state.js';
import { HASH_SLOTS } from '../lib/shared/keys.js';
import { intervalStart, sleep, until } from '../test/kit/wait.js';
import { intervalsPass, type Fault } from './faults.js';
import type { Chaos } from './harness.js';
import { none } from './invariants.js';

const run = promisify(execFile);

/** A node of the cluster as CLUSTER NODES describes it. */
interface ClusterNode {
  id: string;
  port: number;
  master: boolean;
  /** slots it serves, counted */
  slots: number;
}

/** The cluster's nodes as one live node sees them (the failed ones left out). */
async function clusterNodes(h: Chaos): Promise<ClusterNode[]> {
  for (const seed of h.redisCluster.seeds) {
    const redis = new Redis(seed, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      const text = String(await redis.call('CLUSTER', 'NODES'));
      return text
        .trim()
        .split('\n')
        .map((line) => line.split(' '))
        .filter((f) => !f[2]!.includes('fail'))
        .map((f) => ({
          id: f[0]!,
          port: Number(f[1]!.split('@')[0]!.split(':')[1]),
          master: f[2]!.includes('master'),
          slots: f.slice(8).reduce((n, range) => {
            const [a, b] = range.split('-').map(Number);
            return n + (b === undefined ? 1 : b - a! + 1);
          }, 0),
        }));
    } catch {
      /* that node is down: ask another */
    } finally {
      redis.disconnect();
    }
  }
  throw new Error('no node of the Redis Cluster answers');
}

/** Waits until every slice's totals are trusted again (rebuilt where a master failed); resolves to how long. */
function trustedAgain(h: Chaos): Promise<number> {
  const { redis, svc, totals } = h.cluster;
  return until(() => totalsTrusted(redis, svc.cluster, totals.slices).catch(() => false), 120_000, 'totals trusted');
}

/**
 * A master SIGKILLed in the middle of an interval: its replica is promoted after the cluster's node
 * timeout, the nodes' clients follow it, and the slices it held are rebuilt from MongoDB (their last
 * writes may not have reached the replica). Nothing is lost or counted twice; the killed node stays
 * down.
 */
export const redisMasterFailover: Fault = async (h) => {
  const from = h.checkedTo;
  const masters = (await clusterNodes(h)).filter((n) => n.master && n.slots > 0);
  const victim = masters[Math.floor(Math.random() * masters.length)]!;
  const process = h.redisCluster.nodes.find((n) => n.port === victim.port)!;
  await sleep(intervalStart(Date.now(), h.intervalMs) + 1.5 * h.intervalMs - Date.now());
  const killedAt = Date.now();
  h.redisNodesDown.add(victim.port);
  await process.stop('SIGKILL');
  // promoted: a replica serves the victim's slots, every slot is served again
  await until(
    async () => {
      const masters = (await clusterNodes(h)).filter((n) => n.master);
      const served = masters.reduce((sum, n) => sum + n.slots, 0);
      return !masters.some((n) => n.port === victim.port) && served === HASH_SLOTS;
    },
    60_000,
    'a replica promoted',
  );
  const live = h.redisCluster.seeds.filter((s) => new URL(s).port !== String(victim.port));
  await clusterOk(live, 60_000);
  const promoted = Date.now() - killedAt;
  const trusted = await trustedAgain(h);
  const steady = await h.waitSteady(60_000);
  const to = Math.max(await intervalsPass(h, 2), intervalStart(killedAt, h.intervalMs) + 3 * h.intervalMs);
  return {
    fault: 'Redis Cluster master SIGKILLed, its replica promoted',
    windows: [{ what: 'master failover', from, to, allowed: none }],
    figures: {
      'slots of the killed master': victim.slots,
      'replica promoted ms': promoted,
      'totals trusted again ms (after that)': trusted,
      'steady ms': steady,
    },
  };
};

/**
 * Half of one master's slots moved to another while the nodes write (`redis-cli --cluster reshard`,
 * which MIGRATEs each key): an apply call on a slice being moved is answered ASK or TRYAGAIN and
 * retried, the moved slices keep their totals (their old master still serves: no rebuild).
 */
export const redisSlotsMoved: Fault = async (h) => {
  const from = h.checkedTo;
  const masters = (await clusterNodes(h)).filter((n) => n.master && n.slots > 0).sort((a, b) => b.slots - a.slots);
  const [source, target] = [masters[0]!, masters[masters.length - 1]!];
  const slots = Math.floor(source.slots / 2);
  const seed = h.redisCluster.seeds.find((s) => new URL(s).port === String(source.port))!;
  const cli = join(dirname(h.redisCluster.nodes[0]!.binary.path), 'redis-cli');
  const args = ['--cluster', 'reshard', `127.0.0.1:${source.port}`, '--cluster-from', source.id];
  args.push('--cluster-to', target.id, '--cluster-slots', String(slots), '--cluster-yes');
  const started = Date.now();
  await run(cli, args, {
    timeout: 300_000,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, REDISCLI_AUTH: decodeURIComponent(new URL(seed).password) },
  });
  const moved = Date.now() - started;
  const trusted = await trustedAgain(h);
  const rebuilt = await rebuildsLogged(h);
  const to = await intervalsPass(h, 2);
  return {
    fault: `Redis Cluster slots moved between masters (${slots})`,
    windows: [{ what: 'slots moved', from, to, allowed: none }],
    figures: {
      'slots moved': slots,
      'reshard ms': moved,
      'totals trusted ms (after that)': trusted,
      rebuilds: rebuilt,
    },
    problems: rebuilt > 0 ? [`${rebuilt} rebuilds after slots moved from a master that still serves`] : [],
  };
};

/** How many times the nodes logged a rebuild so far (their output). */
async function rebuildsLogged(h: Chaos): Promise<number> {
  return h.processes.reduce((n, p) => n + (p.child.output().match(/rebuilding the running totals/g)?.length ?? 0), 0);
}
