// A Redis Cluster of local redis-server processes, for the demo (`demo --redis-cluster N`), the
// tests and the benchmark: N masters, each serving an even range of the hash slots (so the layout's
// slices, whose tags are spread evenly over the slots, are shared evenly), and replicas where a test
// needs a failover; on free loopback ports, with one password for every node.
import { Redis } from 'ioredis';
import { join } from 'node:path';
import { freePort } from '../ports.js';
import { sleep } from '../../shared/util.js';
import { HASH_SLOTS } from '../../shared/keys.js';
import type { Binary } from './binaries.js';
import { launch, type ServerProcess } from './launch.js';
import { SetupError } from './setup-error.js';

export interface RedisClusterOptions {
  masters: number;
  /** replicas per master (a failover needs one) */
  replicas?: number;
  /** each node's data in a directory of its own below this one; the password in it */
  dataDir: string;
  persist?: boolean;
  detached?: boolean;
  /** how long a master may be unreachable before its replica takes over (Redis's cluster-node-timeout) */
  nodeTimeoutMs?: number;
}

export interface RedisClusterProcess {
  /** every node: the masters first, then the replicas of master 0, 1, ... */
  nodes: ServerProcess[];
  /** every node's URL, with the cluster's password: what REDIS_CLUSTER_NODES takes */
  seeds: string[];
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Starts the nodes and makes them one cluster (CLUSTER ADDSLOTSRANGE on each master, MEET, then
 * REPLICATE on each replica: `redis-cli --cluster create` would refuse fewer than 3 masters), and
 * resolves once every node says the cluster is ok.
 */
export async function launchRedisCluster(binary: Binary, o: RedisClusterOptions): Promise<RedisClusterProcess> {
  const replicas = o.replicas ?? 0;
  const nodes: ServerProcess[] = [];
  const stop = async (signal?: NodeJS.Signals): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop(signal)));
  };
  const buses: number[] = [];
  try {
    for (let i = 0; i < o.masters * (1 + replicas); i++) {
      const [port, busPort] = [await freePort(), await freePort()];
      const cluster = { nodeTimeoutMs: o.nodeTimeoutMs ?? 2000, busPort };
      const dataDir = join(o.dataDir, `node-${i}`);
      // one password for every node (in the cluster's directory), so replicas can log in to their masters
      const opts = { port, dataDir, persist: o.persist, detached: o.detached, secretDir: o.dataDir, cluster };
      nodes.push(await launch(binary, opts));
      buses.push(busPort);
    }
    await form(nodes, buses, o.masters, replicas);
    const seeds = nodes.map((n) => n.url);
    await clusterOk(seeds, 30_000);
    return { nodes, seeds, stop };
  } catch (err) {
    await stop('SIGKILL');
    throw err;
  }
}

/** Slots to the masters in even ranges, every node met, each replica following its master. */
async function form(nodes: ServerProcess[], buses: number[], masters: number, replicas: number): Promise<void> {
  const admins = nodes.map((n) => new Redis(n.url, { maxRetriesPerRequest: 2 }));
  try {
    const range = (i: number): number => Math.floor((i * HASH_SLOTS) / masters);
    await Promise.all(
      admins.slice(0, masters).map((r, i) => r.call('CLUSTER', 'ADDSLOTSRANGE', range(i), range(i + 1) - 1)),
    );
    for (const r of admins.slice(1)) await r.call('CLUSTER', 'MEET', '127.0.0.1', nodes[0]!.port, buses[0]!);
    await until(30_000, 'every node met', async () => {
      const infos = await Promise.all(admins.map((r) => r.call('CLUSTER', 'INFO') as Promise<string>));
      return infos.every((info) => new RegExp(`cluster_known_nodes:${nodes.length}\\b`).test(info));
    });
    const ids = await Promise.all(admins.slice(0, masters).map((r) => r.call('CLUSTER', 'MYID') as Promise<string>));
    for (let j = 0; j < masters * replicas; j++)
      await admins[masters + j]!.call('CLUSTER', 'REPLICATE', ids[Math.floor(j / replicas)]!);
  } catch (err) {
    if (err instanceof SetupError) throw err;
    throw new SetupError([`the Redis Cluster could not be formed: ${(err as Error).message}`]);
  } finally {
    for (const r of admins) r.disconnect();
  }
}

/** Resolves once every node (its URL) answers `cluster_state:ok` with every slot served. */
export async function clusterOk(seeds: string[], timeoutMs: number): Promise<void> {
  const where = seeds.map((s) => new URL(s).host).join(',');
  await until(timeoutMs, `the Redis Cluster on ${where} ok`, async () => {
    const states = await Promise.all(seeds.map((seed) => clusterInfo(seed)));
    return states.every((s) => /cluster_state:ok/.test(s) && /cluster_slots_ok:16384/.test(s));
  });
}

async function until(timeoutMs: number, what: string, ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new SetupError([`not so after ${timeoutMs} ms: ${what}`]);
    await sleep(100);
  }
}

async function clusterInfo(seed: string): Promise<string> {
  const redis = new Redis(seed, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return String(await redis.call('CLUSTER', 'INFO'));
  } catch {
    return '';
  } finally {
    redis.disconnect();
  }
}
