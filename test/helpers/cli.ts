// Runs the real CLI (bin/influencer-node.js over the compiled dist/) as a child process.
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN, ROOT } from '../kit/children.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Environment without the caller's settings, so a developer's shell cannot change a test. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn' };
  return { ...env, ...extra };
}

/** Another user to run the CLI as (the tests run as root): `{ uid: 65534, gid: 65534 }` is nobody. */
export interface RunAs {
  uid: number;
  gid: number;
}

export function runCli(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
  as?: RunAs,
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    // as another user, without the coverage hooks tap adds to NODE_OPTIONS: they write into .tap/, which is root's
    const [cmd, argv] = as
      ? ['/usr/bin/env', ['-u', 'NODE_OPTIONS', process.execPath, BIN, ...args]]
      : [process.execPath, [BIN, ...args]];
    const child = spawn(cmd, argv, { env: cleanEnv(env), cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...as });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`influencer-node ${args.join(' ')} did not exit in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts a long-running CLI command (start, mock); the caller stops it. `bin`: another version's entry point. */
export function spawnCli(
  args: string[],
  env: Record<string, string> = {},
  bin = BIN,
): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [bin, ...args], {
    env: cleanEnv(env),
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    out += d;
  });
  return Object.assign(child, { output: () => out });
}
