// The servers a benchmark run needs, each a child process on a free port, started by the shared kit
// (test/kit: redis-server without persistence, FerretDB with SQLite in memory, a Redis Cluster of
// such redis-servers, found or installed as `setup` would), and the bundled Mockstagram mock. Every
// child is SIGKILLed by the kit's `killAll`, which run.ts calls on exit and on Ctrl-C.
import type { ChildProcess } from 'node:child_process';
import { BIN, ROOT, track, waitForChild } from '../test/kit/children.js';
import {
  freePort,
  startFerret as kitFerret,
  startRedis as kitRedis,
  startRedisCluster as kitCluster,
  startServersAsACommand,
} from '../test/kit/servers.js';

startServersAsACommand();

export interface Service {
  name: string;
  url: string;
  child: ChildProcess;
}

export async function startRedis(): Promise<Service> {
  const server = await kitRedis();
  return { name: 'redis', url: server.url, child: server.process! };
}

export async function startFerret(): Promise<Service> {
  const server = await kitFerret();
  return { name: 'ferretdb', url: server.url, child: server.process! };
}

/** The mock as the CLI runs it, with no is_suspicious delay. */
export async function startMockProcess(pkMin: number, count: number): Promise<Service> {
  const port = await freePort();
  const child = track(
    process.execPath,
    [BIN, 'mock', '--port', String(port), '--count', String(count), '--suspicious-delay-scale', '0'],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, PK_MIN: String(pkMin), LOG_LEVEL: 'warn' },
    },
  );
  await waitForChild(port, child, 'mock');
  return { name: 'mock', url: `http://127.0.0.1:${port}`, child };
}

/** A Redis Cluster's masters, and its seed list as REDIS_CLUSTER_NODES takes it (the nodes' URLs). */
export interface RedisClusterServers {
  masters: Service[];
  nodes: string;
}

/**
 * A Redis Cluster of `count` masters without replicas (lib/ops/embedded/redis-cluster.ts: the slots in
 * even ranges, so slice s of the layout lands on master ⌊s·count/S⌋), on free ports with its data in
 * a temp dir; resolves once every master says cluster_state:ok.
 */
export async function startRedisCluster(count: number): Promise<RedisClusterServers> {
  const cluster = await kitCluster(count, 0, {});
  const masters = cluster.nodes.map((n, i) => ({ name: `redis${i + 1}`, url: n.url, child: n.child }));
  return { masters, nodes: cluster.seeds.join(',') };
}
