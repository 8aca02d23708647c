// Child processes of the tests, the benchmarks and the chaos suite: the CLI's path, a spawn that
// keeps the end of stderr and is killed by `killAll` on exit, whether one runs, waiting for its exit,
// and stopping it (a signal, then SIGKILL past a deadline).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OutputTail } from '../../lib/ops/embedded/tail.js';
import { waitForPort } from '../../lib/ops/ports.js';
import { PACKAGE_ROOT } from '../../lib/shared/version.js';

/** The checkout's root, from source or from dist/. */
export const ROOT = PACKAGE_ROOT;
/** The CLI (bin/influencer-node.js over the compiled dist/). */
export const BIN = join(ROOT, 'bin', 'influencer-node.js');

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Registers a child for `killAll` (until it exits). */
export function tracked<C extends ChildProcess>(child: C): C {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Spawns a child that `killAll` will kill; its stderr is kept (last 4 kB) for error messages. */
export function track(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess & { tail: () => string } {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  const tail = new OutputTail().follow(child.stderr);
  return Object.assign(tracked(child), { tail: () => tail.toString() });
}

/** A temp directory that `killAll` removes; in memory (/dev/shm) when `memory` and the machine has it. */
export function tempDir(prefix: string, o: { memory?: boolean } = {}): string {
  // FerretDB's SQLite files do better in memory when /dev/shm is there
  const base = o.memory && existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, prefix));
  tempDirs.add(dir);
  return dir;
}

/** Removes a temp directory now (and forgets it). */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

/** SIGKILLs every tracked child still running and removes the temp dirs; synchronous, so it also works in an exit handler. */
export function killAll(): void {
  for (const child of children) if (isRunning(child)) child.kill('SIGKILL');
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

export function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves to the exit code once `child` has exited; rejects past `timeoutMs`. */
export function waitExit(child: ChildProcess, timeoutMs = 60_000): Promise<number | null> {
  if (!isRunning(child)) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`process ${child.pid} did not exit in ${timeoutMs} ms`)),
      timeoutMs,
    );
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Sends `signal`, waits up to `timeoutMs` for the exit, then SIGKILLs; resolves to the exit code. */
export async function stopChild(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  timeoutMs = 60_000,
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
