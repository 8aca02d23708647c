// The servers a benchmark run needs, each a child process on a free port: redis-server (no
// persistence) and FerretDB (SQLite in a temp dir), found or installed and started by the
// product's own code (lib/ops/embedded), a Redis Cluster of such redis-servers, and the bundled
// Mockstagram mock. Every child is SIGKILLed by `killAll`, which run.ts calls on exit and on Ctrl-C.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Binary } from '../lib/ops/embedded/binaries.js';
import { launch } from '../lib/ops/embedded/launch.js';
import { launchRedisCluster } from '../lib/ops/embedded/redis-cluster.js';
import { ensureServers, type Servers } from '../lib/ops/embedded/setup.js';
import { OutputTail } from '../lib/ops/embedded/tail.js';
import { freePort, waitForPort } from '../lib/ops/ports.js';
import { PACKAGE_ROOT } from '../lib/shared/version.js';

export const ROOT = PACKAGE_ROOT;
export const BIN = join(ROOT, 'bin', 'influencer-node.js');
export { freePort };

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Spawns a child that `killAll` will kill; its stderr is kept (last 4 kB) for error messages. */
export function track(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess & { tail: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  const tail = new OutputTail().follow(child.stderr);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return Object.assign(child, { tail: () => tail.toString() });
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGKILLs every child still running and removes the temp dirs; synchronous, so it also works in an exit handler. */
export function killAll(): void {
  for (const child of children) if (isRunning(child)) child.kill('SIGKILL');
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** Sends `signal`, waits up to `timeoutMs` for the exit, then SIGKILLs; resolves to the exit code. */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = 30_000,
): Promise<number | null> {
  if (!isRunning(child)) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

export function tempDir(prefix: string): string {
  // FerretDB's SQLite files do better in memory when /dev/shm is there
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, prefix));
  tempDirs.add(dir);
  return dir;
}

/** Resolves once `child` listens on `port`; throws with the end of its stderr if it exits first. */
export function waitForChild(
  port: number,
  child: ChildProcess & { tail: () => string },
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const gone = (): string | undefined =>
    isRunning(child)
      ? undefined
      : `${what} exited (code ${child.exitCode ?? child.signalCode}) before listening: ${child.tail().trim().slice(-500)}`;
  return waitForPort(port, timeoutMs, gone);
}

export interface Service {
  name: string;
  url: string;
  child: ChildProcess;
}

let binaries: Promise<Servers> | undefined;

export function startRedis(): Promise<Service> {
  return startServer('redis');
}

export function startFerret(): Promise<Service> {
  return startServer('ferret');
}

/** The redis-server or FerretDB binary, found or installed once per run (progress on stdout). */
async function serverBinary(name: 'redis' | 'ferret'): Promise<Binary> {
  binaries ??= ensureServers((text) => {
    process.stdout.write(text);
  });
  return (await binaries)[name]!;
}

/** A server on a free port with its data in a temp dir, once it listens; found or installed first (progress on stdout). */
async function startServer(name: 'redis' | 'ferret'): Promise<Service> {
  const binary = await serverBinary(name);
  const server = await launch(binary, { port: await freePort(), dataDir: tempDir(`bench-${name}-`) });
  children.add(server.child);
  return { name: name === 'redis' ? 'redis' : 'ferretdb', url: server.url, child: server.child };
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
  const cluster = await launchRedisCluster(await serverBinary('redis'), {
    masters: count,
    dataDir: tempDir('bench-redis-cluster-'),
  });
  for (const n of cluster.nodes) children.add(n.child);
  const masters = cluster.nodes.map((n, i) => ({ name: `redis${i + 1}`, url: n.url, child: n.child }));
  return { masters, nodes: cluster.seeds.join(',') };
}
