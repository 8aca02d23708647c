// Real servers for the tests, the benchmarks and the chaos suite: a throwaway redis-server, FerretDB
// (SQLite backend) or Redis Cluster on free ports with its data in a temp dir, found (or installed)
// and started by the product's own code, as demo does (lib/ops/embedded). Each is stopped by its
// owner (a test file's end) or by `killAll` (children.ts). A test file's `services()` uses those named
// by REDIS_URL / MONGO_URL when set, and hands out its own key prefix and database per call.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Db, MongoClient } from 'mongodb';
import type { Binary } from '../../lib/ops/embedded/binaries.js';
import { launch, serverAddress, type ServerProcess } from '../../lib/ops/embedded/launch.js';
import { ensureServers } from '../../lib/ops/embedded/setup.js';
import { aptPolicy, type AptPolicy, type Write } from '../../lib/ops/embedded/install.js';
import { readSetting } from '../../lib/ops/config.js';
import { createLogger } from '../../lib/shared/log.js';
import { connectMongo, createMongo } from '../../lib/shared/mongo.js';
import { freePort } from '../../lib/ops/ports.js';
import { connectRedis, createRedis, type RedisClient, type RedisTarget } from '../../lib/shared/redis.js';
import { launchRedisCluster, type RedisClusterProcess } from '../../lib/ops/embedded/redis-cluster.js';
import { removeTempDir, tempDir, tracked } from './children.js';

export interface Services {
  /** one Redis's URL; on a Redis Cluster (TEST_REDIS=cluster) the URL of one of its masters */
  redisUrl: string;
  /** where the product connects: redisUrl, or the Redis Cluster */
  redisTarget: RedisTarget;
  /** the environment that names it to a node or a command: REDIS_URL or REDIS_CLUSTER_NODES */
  redisEnv: Record<string, string>;
  mongoUrl: string;
  /** unique per call: use as CLUSTER (Redis key prefix) */
  cluster: string;
  /** unique per call: use as MONGO_DB */
  mongoDb: string;
}

export interface Server {
  url: string;
  port: number;
  process?: ChildProcess;
  stop(): Promise<void>;
  /** for fault tests: stop and start the same server on the same port, keeping its data dir */
  restart(): Promise<void>;
  down(): Promise<void>;
  up(): Promise<void>;
}

/** What owns the servers: a tap test (they stop when its file's tests end), or a script's own scope. */
export interface Owner {
  teardown(fn: () => unknown): void;
  /** a subtest's parent: servers live until the root ends */
  parent?: unknown;
}

const started: Server[] = [];
let redisServer: Promise<Server> | undefined;
let redisCluster: Promise<RedisClusterProcess> | undefined;

/** Whether this run's tests use a Redis Cluster of 3 masters instead of one Redis (TEST_REDIS=cluster). */
export const ON_REDIS_CLUSTER = process.env.TEST_REDIS === 'cluster' || Boolean(process.env.REDIS_CLUSTER_NODES);
let mongoServer: Promise<Server> | undefined;

/** Servers for a test: `given` URLs (fault tests bring servers they restart), else shared ones. */
export async function services(
  t: Owner,
  given: { redisUrl?: string; redisClusterNodes?: string[]; mongoUrl?: string } = {},
): Promise<Services> {
  registerTeardown(t);
  const mongoUrl = given.mongoUrl || process.env.MONGO_URL || (await (mongoServer ??= startFerret())).url;
  const id = randomBytes(4).toString('hex');
  const names = { cluster: `t${id}`, mongoDb: `t_${id}` };
  if (given.redisClusterNodes || (ON_REDIS_CLUSTER && !given.redisUrl)) {
    const seeds =
      given.redisClusterNodes ??
      process.env.REDIS_CLUSTER_NODES?.split(',') ??
      (await (redisCluster ??= startRedisCluster())).seeds;
    const redisTarget = { clusterNodes: seeds };
    const redisEnv = { REDIS_CLUSTER_NODES: seeds.join(',') };
    return { redisUrl: `redis://${seeds[0]}`, redisTarget, redisEnv, mongoUrl, ...names };
  }
  const redisUrl = given.redisUrl || process.env.REDIS_URL || (await (redisServer ??= startRedis())).url;
  return { redisUrl, redisTarget: redisUrl, redisEnv: { REDIS_URL: redisUrl }, mongoUrl, ...names };
}

/** `services(t)` with clients connected by the product's own connection code, closed when `t` ends. */
export async function connected(
  t: Owner,
  name: string,
): Promise<Services & { redis: RedisClient; mongo: MongoClient; db: Db }> {
  const svc = await services(t);
  const log = createLogger('silent');
  const redis = createRedis(svc.redisTarget, log, name);
  await connectRedis(redis, svc.redisTarget, log);
  const mongo = createMongo(svc.mongoUrl);
  t.teardown(async () => {
    redis.disconnect();
    await mongo.close();
  });
  const db = await connectMongo(mongo, svc.mongoUrl, svc.mongoDb, log);
  return { ...svc, redis, mongo, db };
}

let teardownRegistered = false;
function registerTeardown(t: Owner): void {
  if (teardownRegistered) return;
  teardownRegistered = true;
  // the root test ends after every subtest of the file
  let root = t;
  while (root.parent) root = root.parent as Owner;
  root.teardown(async () => {
    await Promise.all(started.map((s) => s.stop()));
    if (redisCluster) await (await redisCluster).stop('SIGKILL');
  });
}

export { freePort };

/** The tests install redis-server with apt-get only when CI is set or APT_INSTALL=yes (and never with APT_INSTALL=no). */
export function testsApt(env: NodeJS.ProcessEnv = process.env): AptPolicy {
  return aptPolicy(readSetting('aptInstall', env), 'tests', env);
}

/** Who starts the servers: the tests (apt-get only as `testsApt` allows), or a command-like script (the benchmark). */
let starter: { apt: () => AptPolicy; write: Write; memory: boolean } = {
  apt: () => testsApt(),
  // under tap the lines naming the binaries would only clutter a test's output
  write: process.env.TAP ? () => undefined : (text) => void process.stderr.write(text),
  memory: false,
};

/**
 * The servers of this process are started as a command starts them: missing ones installed as
 * `setup` would, progress on stdout, the data in memory (/dev/shm) where the machine has it.
 */
export function startServersAsACommand(): void {
  starter = {
    apt: () => aptPolicy(readSetting('aptInstall'), 'command'),
    write: (text) => void process.stdout.write(text),
    memory: true,
  };
}

const binaries = new Map<'redis' | 'ferret', Promise<Binary>>();

/** redis-server or FerretDB, found or installed once per process (under tap, the `before` script installed them). */
function binary(name: 'redis' | 'ferret'): Promise<Binary> {
  const wanted = { redis: name === 'redis', ferret: name === 'ferret' };
  if (!binaries.has(name))
    binaries.set(
      name,
      ensureServers(starter.write, process.env, wanted, starter.apt()).then((s) => s[name]!),
    );
  return binaries.get(name)!;
}

/** Where a server will listen and keep its data, and its URL (password included), before it starts. */
export interface Planned {
  port: number;
  dataDir: string;
  url: string;
}

/** A Redis Cluster of `masters` masters (and `replicas` replicas each) on free ports, its data in a temp dir, stopped with the file's tests. */
export async function startRedisCluster(
  masters = 3,
  replicas = 0,
  o: { nodeTimeoutMs?: number } = { nodeTimeoutMs: 1000 },
): Promise<RedisClusterProcess> {
  const dataDir = tempDir('inode-redis-cluster-', starter);
  const cluster = await launchRedisCluster(await binary('redis'), { masters, replicas, dataDir, ...o });
  for (const n of cluster.nodes) tracked(n.child);
  const stop = cluster.stop;
  return {
    ...cluster,
    async stop(signal) {
      await stop(signal);
      removeTempDir(dataDir);
    },
  };
}

/** A port and a data dir for a server of this kind, and the URL it will answer at once started with them. */
export async function plan(kind: 'redis' | 'ferret', port?: number, o: { auth?: boolean } = {}): Promise<Planned> {
  const p = port ?? (await freePort());
  const dataDir = tempDir(kind === 'redis' ? 'inode-redis-' : 'inode-ferret-', starter);
  const name = kind === 'redis' ? 'redis-server' : 'ferretdb';
  return { port: p, dataDir, url: serverAddress(name, { port: p, dataDir, auth: o.auth }) };
}

/**
 * Starts redis-server on a free port (or `port`, or as `planned`), without persistence, with a
 * password; `auth: false` for a stand-in of a server someone else runs at the default address.
 */
export async function startRedis(at?: number | Planned, o: { auth?: boolean } = {}): Promise<Server> {
  return start(await binary('redis'), typeof at === 'object' ? at : await plan('redis', at, o), o);
}

/** Starts FerretDB 1.24 with its SQLite backend on a free port (or `port`, or as `planned`); its data lives in a temp dir. */
export async function startFerret(at?: number | Planned): Promise<Server> {
  return start(await binary('ferret'), typeof at === 'object' ? at : await plan('ferret', at));
}

async function start(bin: Binary, where: Planned, o: { auth?: boolean } = {}): Promise<Server> {
  const { port: p, dataDir } = where;
  let current: ServerProcess | undefined;
  const run = async (): Promise<void> => {
    current = await launch(bin, { port: p, dataDir, auth: o.auth });
    server.process = tracked(current.child);
  };
  const server: Server = {
    url: where.url,
    port: p,
    async stop() {
      await current?.stop('SIGKILL');
      const i = started.indexOf(server);
      if (i >= 0) started.splice(i, 1);
      removeTempDir(dataDir);
    },
    async restart() {
      await server.down();
      await server.up();
    },
    async down() {
      await current?.stop('SIGKILL');
    },
    up: run,
  };
  await run();
  started.push(server);
  return server;
}
