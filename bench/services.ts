// The servers a benchmark run needs, each a child process on a free port: redis-server (no
// persistence), FerretDB (SQLite in a temp dir) and the bundled Mockstagram mock. Every child
// spawned through `track` is SIGKILLed by `killAll`, which run.ts calls on exit and on Ctrl-C.
import { spawn, execFileSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = join(ROOT, 'bin', 'influencer-node.js');

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Spawns a child that `killAll` will kill; its stderr is kept (last 4 kB) for error messages. */
export function track(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess & { tail: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  let tail = '';
  child.stderr?.on('data', (d: Buffer) => { tail = (tail + d.toString()).slice(-4096); });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return Object.assign(child, { tail: () => tail });
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
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000): Promise<number | null> {
  if (!isRunning(child)) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try { return await exited; } finally { clearTimeout(timer); }
}

export function tempDir(prefix: string): string {
  // FerretDB's SQLite files do better in memory when /dev/shm is there
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, prefix));
  tempDirs.add(dir);
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function waitForPort(port: number, child: ChildProcess & { tail: () => string }, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isRunning(child)) throw new Error(`${what} exited (code ${child.exitCode ?? child.signalCode}) before listening: ${child.tail().trim().slice(-500)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => { sock.destroy(); resolve(true); });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} is not listening on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function findBinary(name: string, candidates: string[], hint: string): string {
  for (const c of candidates) if (existsSync(c)) return c;
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${name} not found: ${hint}`);
  }
}

function ferretCandidates(): string[] {
  try {
    return [join(execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).trim(), 'bin', 'ferretdb')];
  } catch {
    return [];
  }
}

export interface Service { name: string; url: string; child: ChildProcess & { tail: () => string } }

/** Debian's redis-server on `port`, without persistence (shared by the benchmark and the tests). */
export function redisCommand(port: number, dir: string): { bin: string; args: string[] } {
  const bin = findBinary('redis-server', ['/usr/bin/redis-server'], 'install it with `apt-get install redis-server`');
  return { bin, args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir] };
}

/** FerretDB 1.24 with its SQLite backend in `dir` (shared by the benchmark and the tests). */
export function ferretCommand(port: number, dir: string): { bin: string; args: string[] } {
  const bin = findBinary('ferretdb', ferretCandidates(), 'build it with `bash .ci/build-ferretdb.sh` (FerretDB 1.24.2, needs Go)');
  return {
    bin,
    args: ['--handler=sqlite', `--sqlite-url=file:${dir}/`, `--listen-addr=127.0.0.1:${port}`,
      '--telemetry=disable', '--debug-addr=-', `--state-dir=${dir}`, '--log-level=error'],
  };
}

export function startRedis(): Promise<Service> {
  return startServer('redis', 'redis-server', 'redis', redisCommand);
}

export function startFerret(): Promise<Service> {
  return startServer('ferretdb', 'ferretdb', 'mongodb', ferretCommand);
}

/** A server on a free port with its data in a temp dir, once it listens. */
async function startServer(name: string, what: string, scheme: string, command: (port: number, dir: string) => { bin: string; args: string[] }): Promise<Service> {
  const port = await freePort();
  const { bin, args } = command(port, tempDir(`bench-${name}-`));
  const child = track(bin, args);
  await waitForPort(port, child, what);
  return { name, url: `${scheme}://127.0.0.1:${port}`, child };
}

/** The mock as the CLI runs it, with no is_suspicious delay. */
export async function startMockProcess(pkMin: number, count: number): Promise<Service> {
  const port = await freePort();
  const child = track(process.execPath, [BIN, 'mock', '--port', String(port), '--count', String(count), '--suspicious-delay-scale', '0'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PK_MIN: String(pkMin), LOG_LEVEL: 'warn' },
  });
  await waitForPort(port, child, 'mock');
  return { name: 'mock', url: `http://127.0.0.1:${port}`, child };
}
