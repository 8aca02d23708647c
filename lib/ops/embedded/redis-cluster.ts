// A Redis Cluster of local redis-server processes, for the demo (`demo --redis-cluster N`), the
// tests and the benchmark: N masters (and replicas where a test needs a failover) on free loopback
// ports, made one cluster by `redis-cli --cluster create`, with even slot ranges per master.
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from '../ports.js';
import { sleep } from '../../shared/util.js';
import type { Binary } from './binaries.js';
import { launch, type ServerProcess } from './launch.js';
import { SetupError } from './setup-error.js';

const run = promisify(execFile);

export interface RedisClusterOptions {
  masters: number;
  /** replicas per master (a failover needs one) */
  replicas?: number;
  /** each node's data in a directory of its own below this one */
  dataDir: string;
  persist?: boolean;
  detached?: boolean;
  /** how long a master may be unreachable before its replica takes over (Redis's cluster-node-timeout) */
  nodeTimeoutMs?: number;
}

export interface RedisClusterProcess {
  /** every node, masters first as created */
  nodes: ServerProcess[];
  /** every node's URL, with the cluster's password: what REDIS_CLUSTER_NODES takes */
  seeds: string[];
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts the nodes, creates the cluster and resolves once every node says the cluster is ok. */
export async function launchRedisCluster(binary: Binary, o: RedisClusterOptions): Promise<RedisClusterProcess> {
  const count = o.masters * (1 + (o.replicas ?? 0));
  const nodes: ServerProcess[] = [];
  const stop = async (signal?: NodeJS.Signals): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop(signal)));
  };
  try {
    // one password for every node (in the cluster's directory), so replicas can log in to their masters
    const secretDir = o.dataDir;
    const cluster = { nodeTimeoutMs: o.nodeTimeoutMs ?? 2000 };
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const dataDir = join(o.dataDir, `node-${i}`);
      nodes.push(await launch(binary, { port, dataDir, persist: o.persist, detached: o.detached, secretDir, cluster }));
    }
    const seeds = nodes.map((n) => n.url);
    const cli = join(dirname(binary.path), 'redis-cli');
    const hosts = nodes.map((n) => `127.0.0.1:${n.port}`);
    const args = ['--cluster', 'create', ...hosts, '--cluster-replicas', String(o.replicas ?? 0), '--cluster-yes'];
    // the password in the environment, not on a command line that `ps` shows
    const auth = new URL(seeds[0]!).password;
    try {
      await run(cli, args, { timeout: 60_000, env: { ...process.env, REDISCLI_AUTH: decodeURIComponent(auth) } });
    } catch (err) {
      throw new SetupError([`redis-cli --cluster create failed: ${(err as Error).message.split('\n')[0]}`]);
    }
    await clusterOk(seeds, 30_000);
    return { nodes, seeds, stop };
  } catch (err) {
    await stop('SIGKILL');
    throw err;
  }
}

/** Resolves once every node (its URL) answers `cluster_state:ok` with every slot served. */
export async function clusterOk(seeds: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await Promise.all(seeds.map((seed) => clusterInfo(seed)));
    if (states.every((s) => /cluster_state:ok/.test(s) && /cluster_slots_ok:16384/.test(s))) return;
    if (Date.now() > deadline) {
      const where = seeds.map((s) => new URL(s).host).join(',');
      throw new SetupError([`the Redis Cluster on ${where} is not ok after ${timeoutMs} ms`]);
    }
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
