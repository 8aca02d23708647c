// The Redis and MongoDB a demo runs against: the one its URL names (REDIS_URL, MONGO_URL), else one
// answering at the default address, else its own redis-server / FerretDB on free ports with their
// data in DATA_DIR (installed first when missing), which the demo stops last.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import { maskUrl } from '../../shared/mask-url.js';
import { freePort } from '../ports.js';
import { pingMongo, pingRedis } from '../preflight.js';
import { aptPolicy, shortError, type Write } from './install.js';
import { launch, type ServerProcess } from './launch.js';
import { launchRedisCluster } from './redis-cluster.js';
import { describeTarget } from '../../shared/redis.js';
import { ensureServers } from './setup.js';
import { claim, release } from './pid-lock.js';
import { privateDir } from './secret.js';
import { SetupError } from './setup-error.js';

type Role = 'redis' | 'mongodb';

/** How the demo got one of its servers. */
export interface ServerUse {
  role: Role;
  url: string;
  /** why this one, after the URL: "(REDIS_URL)", "(answered at the default address)", "redis-server 7.0.15 started …" */
  how: string;
  /** the processes it started (a Redis Cluster: one per node) */
  processes?: ServerProcess[];
  /** a Redis Cluster's nodes (their URLs), for REDIS_CLUSTER_NODES */
  clusterNodes?: string[];
}

/** What the demo is asked for: which servers were given, and a Redis Cluster of its own of this many masters. */
export interface ServerWish {
  redis: boolean;
  mongo: boolean;
  redisCluster?: number;
}

/** A started server that exited while it was needed: which, how, and its last output. */
export interface Death {
  line: string;
  tail: string[];
}

const DEFAULT_PROBE_MS = 1500;

export class EmbeddedServers {
  private stopping?: Promise<string | undefined>;
  /** resolves when a server this demo started exits before `stop()`; never otherwise */
  readonly died: Promise<Death>;
  private readonly onExit = (): void => this.abandon();

  private constructor(
    readonly redis: ServerUse,
    readonly mongo: ServerUse,
    private readonly dataDir: string,
    private readonly lockFile?: string,
  ) {
    const started = this.processes();
    this.died = new Promise((resolve) => {
      for (const p of started) {
        void p.exited.then((how) => {
          if (this.stopping) return;
          const which = `${p.binary.name} (pid ${p.child.pid}, started by the demo)`;
          const line = `${which} exited (${how}) while the demo ran: stopping the demo`;
          resolve({ line, tail: p.output.lines(5) });
        });
      }
    });
    if (started.length > 0) process.on('exit', this.onExit);
  }

  /**
   * Picks each server: a given URL as it is, else the default address if something answers there,
   * else one of its own (found or installed, then started). Throws a SetupError when that cannot be.
   */
  static async open(config: Config, given: ServerWish, write: Write): Promise<EmbeddedServers> {
    const [redis, mongo] = await Promise.all([
      given.redisCluster
        ? undefined
        : existing('redis', config.redisUrl, given.redis ? 'REDIS_URL' : undefined, pingRedis),
      existing('mongodb', config.mongoUrl, given.mongo ? 'MONGO_URL' : undefined, pingMongo),
    ]);
    if (redis && mongo) return new EmbeddedServers(redis, mongo, config.dataDir);
    const lockFile = lockDataDir(config.dataDir);
    const started: ServerProcess[] = [];
    try {
      const apt = aptPolicy(config.aptInstall, 'command');
      const binaries = await ensureServers(write, process.env, { redis: !redis, ferret: !mongo }, apt);
      const start = async (role: Role): Promise<ServerUse> => {
        const binary = role === 'redis' ? binaries.redis! : binaries.ferret!;
        const dataDir = join(config.dataDir, role === 'redis' ? 'redis' : 'ferretdb');
        const p = await launch(binary, { port: await freePort(), dataDir, persist: true, detached: true });
        started.push(p);
        const how = `${binary.name} ${binary.version} started by the demo (pid ${p.child.pid}), data in ${dataDir}`;
        return { role, url: p.url, how, processes: [p] };
      };
      // a new cluster each time (its nodes would find others on the ports of the last run): the totals are rebuilt from MongoDB
      const startCluster = async (masters: number): Promise<ServerUse> => {
        const dataDir = join(config.dataDir, 'redis-cluster');
        rmSync(dataDir, { recursive: true, force: true });
        const c = await launchRedisCluster(binaries.redis!, { masters, dataDir, detached: true });
        started.push(...c.nodes);
        const pids = c.nodes.map((n) => n.child.pid).join(', ');
        const how = `a Redis Cluster of ${masters} masters started by the demo (redis-server ${binaries.redis!.version}, pids ${pids})`;
        return { role: 'redis', url: c.seeds[0]!, how, processes: c.nodes, clusterNodes: c.seeds };
      };
      return new EmbeddedServers(
        redis ?? (given.redisCluster ? await startCluster(given.redisCluster) : await start('redis')),
        mongo ?? (await start('mongodb')),
        config.dataDir,
        lockFile,
      );
    } catch (err) {
      await Promise.all(started.map((p) => p.stop()));
      release(lockFile);
      throw err;
    }
  }

  /** whether it started a server of its own */
  get started(): boolean {
    return this.processes().length > 0;
  }

  get redisUrl(): string {
    return this.redis.url;
  }
  /** the Redis Cluster it started (its nodes' URLs); empty when Redis is one server */
  get redisClusterNodes(): string[] {
    return this.redis.clusterNodes ?? [];
  }
  get mongoUrl(): string {
    return this.mongo.url;
  }

  /** One line per server, for the demo's first lines. */
  lines(): string[] {
    return [this.redis, this.mongo].map((u) => {
      const where = u.clusterNodes ? describeTarget({ clusterNodes: u.clusterNodes }) : maskUrl(u.url);
      return `${u.role.padEnd(9)} ${where}  ${u.how}`;
    });
  }

  /** Stops the servers it started (SIGTERM: Redis writes its file); a line saying so, or undefined if it started none. */
  stop(): Promise<string | undefined> {
    this.stopping ??= (async () => {
      const started = this.processes();
      await Promise.all(started.map((p) => p.stop()));
      process.off('exit', this.onExit);
      if (this.lockFile) release(this.lockFile);
      if (started.length === 0) return undefined;
      return `servers stopped (${started.map((p) => p.binary.name).join(', ')}); their data stays in ${this.dataDir}`;
    })();
    return this.stopping;
  }

  private processes(): ServerProcess[] {
    return [...(this.redis.processes ?? []), ...(this.mongo.processes ?? [])];
  }

  /** On an abrupt exit (a second Ctrl-C): SIGTERM, so the servers still close their files, and free the data dir. */
  private abandon(): void {
    for (const p of this.processes())
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
    if (this.lockFile) release(this.lockFile);
  }
}

/** The given URL, or the default one if a server answers there; undefined when the demo needs its own. */
type Ping = (url: string, timeoutMs: number) => Promise<string | null>;

async function existing(
  role: Role,
  url: string,
  givenAs: string | undefined,
  ping: Ping,
): Promise<ServerUse | undefined> {
  if (givenAs) return { role, url, how: `(${givenAs})` };
  return (await ping(url, DEFAULT_PROBE_MS)) === null
    ? { role, url, how: '(answered at the default address)' }
    : undefined;
}

/**
 * Creates the data directory and claims it for this demo with a pid file: two demos writing the
 * same Redis and SQLite files would corrupt them.
 */
function lockDataDir(dir: string): string {
  const file = join(dir, 'demo.pid');
  let c;
  try {
    // the servers' data, and their passwords, for this user only
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const sub of ['redis', 'ferretdb']) privateDir(join(dir, sub));
    c = claim(file);
  } catch (err) {
    const why = `the data directory ${dir} is not writable (${shortError(err)})`;
    throw new SetupError([`${why}: pass --data-dir or set DATA_DIR to one that is`]);
  }
  if (!c.ok) {
    const why = `the data directory ${dir} is in use by another demo (pid ${c.holder})`;
    throw new SetupError([`${why}: stop that one, or pass --data-dir to give this one its own`]);
  }
  return file;
}
