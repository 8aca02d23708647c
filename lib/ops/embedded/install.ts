// Installs a missing server, visibly: Debian's redis-server with apt-get (as root only), and
// FerretDB built with Go by scripts/build-ferretdb.sh into the per-user cache. Each step is one
// line with the time it took; a failure is a SetupError with the last lines of the output.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { sleep } from '../../shared/util.js';
import { PACKAGE_ROOT } from '../../shared/version.js';
import { FERRET_VERSION, ferretCachePath, findFerret, onPath, toolEnv, type Binary } from './binaries.js';
import type { AptInstall } from '../config.js';
import { claim, release } from './pid-lock.js';
import { SetupError } from './setup-error.js';
import { OutputTail } from './tail.js';

/** Where progress goes: text as it comes (a step's line is finished when its time is known). */
export type Write = (text: string) => void;

type Env = NodeJS.ProcessEnv;

const GO_HOW = 'install Go ≥ 1.24 from https://go.dev/dl/ (and put its bin directory on PATH), then run this again';

/** Whether apt-get may run here, and when not, why (the clause the refusal names). */
export interface AptPolicy {
  allowed: boolean;
  why?: string;
}

/** Commands (setup, demo) may run apt-get after saying so; the tests only when CI is set; APT_INSTALL decides first. */
export const COMMAND_APT: AptPolicy = { allowed: true };

/** The policy for a command or for the test harness (npm test, the chaos suite), from APT_INSTALL. */
export function aptPolicy(setting: AptInstall, caller: 'command' | 'tests', env: Env = process.env): AptPolicy {
  if (setting === 'no') return { allowed: false, why: 'APT_INSTALL=no' };
  const ci = Boolean(env.CI) && !/^(0|false|no)$/i.test(env.CI ?? '');
  if (setting === 'yes' || caller === 'command' || ci) return COMMAND_APT;
  return { allowed: false, why: 'npm test runs apt-get only when CI is set or APT_INSTALL=yes' };
}

/** The packages apt-get installs, and its steps: said before they run. */
export const REDIS_PACKAGES = ['redis-server'];
const APT_STEPS = [['update'], ['install', '-y', ...REDIS_PACKAGES]];

/** What stops `installRedis` here, in one line; undefined when it can go ahead. */
export function redisBlocker(env: Env = process.env, policy: AptPolicy = COMMAND_APT): string | undefined {
  if (!onPath('apt-get', env)) {
    return (
      'redis-server is missing and there is no apt-get here: ' +
      'install Redis ≥ 6 with your package manager (redis-server on PATH), then run this again'
    );
  }
  if (!policy.allowed) {
    const how = policy.why === 'APT_INSTALL=no' ? '' : ', or set APT_INSTALL=yes';
    return `redis-server is missing and ${policy.why}: install it with \`apt-get install redis-server\`${how}, then run this again`;
  }
  if (process.getuid?.() !== 0) {
    return 'redis-server is missing: install it with `sudo apt-get install redis-server`, then run this again';
  }
  return undefined;
}

/** The apt-get steps, as the line before them says them. */
export function aptSteps(): string {
  return APT_STEPS.map((a) => `apt-get ${a.join(' ')}`).join(', then ');
}

/** The Go toolchain's version (go1.26.8), or undefined without one on PATH. */
export async function goVersion(env: Env = process.env): Promise<string | undefined> {
  const go = onPath('go', env);
  if (!go) return undefined;
  const { ok, tail } = await run(go, ['env', 'GOVERSION'], env);
  return ok ? tail.lines(1)[0] : undefined;
}

/** What stops `installFerret` here, in one line; undefined when it can go ahead. */
export async function ferretBlocker(env: Env = process.env): Promise<string | undefined> {
  const go = await goVersion(env);
  if (!go) return `FerretDB ${FERRET_VERSION} is missing and building it needs Go, which is not on PATH: ${GO_HOW}`;
  // from 1.21 on, go fetches the toolchain FerretDB's go.mod asks for (1.24) by itself
  const [major, minor] = (/^go(\d+)\.(\d+)/.exec(go) ?? []).slice(1).map(Number);
  if (major === 1 && minor! < 21)
    return `FerretDB ${FERRET_VERSION} is missing and ${go} is too old to build it: ${GO_HOW}`;
  return undefined;
}

/** `apt-get update`, then `apt-get install -y redis-server`, by apt-get's absolute path. */
export async function installRedis(
  write: Write,
  env: Env = process.env,
  policy: AptPolicy = COMMAND_APT,
): Promise<void> {
  const blocker = redisBlocker(env, policy);
  if (blocker) throw new SetupError([blocker]);
  const aptGet = onPath('apt-get', env)!;
  const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of APT_STEPS) {
    await step(write, `apt-get ${args.join(' ')}`, async () => {
      const { ok, status, tail } = await run(aptGet, args, aptEnv);
      if (!ok) throw new SetupError([`apt-get ${args.join(' ')} failed (${status}); its last lines:`], tail.lines());
    });
  }
}

/**
 * Builds FerretDB into the cache unless a working one is there. One build at a time per cache: a
 * second caller (a parallel test file, a second demo) waits for the first and uses its binary.
 */
export async function installFerret(write: Write, env: Env = process.env): Promise<Binary> {
  const blocker = await ferretBlocker(env);
  if (blocker) throw new SetupError([blocker]);
  const target = ferretCachePath(env);
  try {
    mkdirSync(dirname(target), { recursive: true });
  } catch (err) {
    const why = `cannot write the cache directory ${dirname(target)} (${shortError(err)})`;
    throw new SetupError([`${why}: set XDG_CACHE_HOME to a writable directory`]);
  }
  return withLock(`${dirname(target)}.lock`, write, async () => {
    const built = (await findFerret(env)).found;
    if (built?.path === target) return built;
    await build(target, write, env);
    const found = (await findFerret(env)).found;
    if (found?.path !== target)
      throw new SetupError([`the FerretDB built at ${target} does not run: its --version fails`]);
    return found;
  });
}

/** Runs scripts/build-ferretdb.sh, one progress line per "step: " line it prints. */
async function build(target: string, write: Write, env: Env): Promise<void> {
  const script = join(PACKAGE_ROOT, 'scripts', 'build-ferretdb.sh');
  // when the step on the current line started: its time ends the line
  let started: number | undefined;
  const close = (how: string): void => {
    if (started !== undefined) write(`${how} ${seconds(Date.now() - started)}\n`);
    started = undefined;
  };
  const bash = onPath('bash', env) ?? '/bin/bash';
  const { ok, status, tail } = await run(bash, [script, FERRET_VERSION, target], env, (line) => {
    const label = /^step: (.*)/.exec(line)?.[1];
    if (!label) return;
    close('');
    started = Date.now();
    write(`  ${label} …`);
  });
  if (ok) return close('');
  close(' failed after');
  const line = `building FerretDB ${FERRET_VERSION} failed (${status}); the last lines of the build:`;
  throw new SetupError([line], tail.lines(12));
}

/** Runs `fn` while holding the pid file `lock`: a live holder is waited for, a dead one's file taken over. */
async function withLock<T>(lock: string, write: Write, fn: () => Promise<T>): Promise<T> {
  let waiting: number | undefined;
  for (let c = claim(lock); !c.ok; c = claim(lock)) {
    if (waiting === undefined) {
      waiting = Date.now();
      write(`  another process${c.holder > 0 ? ` (pid ${c.holder})` : ''} is building it: waiting …`);
    }
    await sleep(500);
  }
  if (waiting !== undefined) write(` ${seconds(Date.now() - waiting)}\n`);
  try {
    return await fn();
  } finally {
    release(lock);
  }
}

/** Writes `  label …`, runs `fn`, then finishes the line with the seconds it took. */
export async function step<T>(write: Write, label: string, fn: () => Promise<T>): Promise<T> {
  const started = Date.now();
  write(`  ${label} …`);
  try {
    const result = await fn();
    write(` ${seconds(Date.now() - started)}\n`);
    return result;
  } catch (err) {
    write(` failed after ${seconds(Date.now() - started)}\n`);
    throw err;
  }
}

interface Ran {
  ok: boolean;
  status: string;
  tail: OutputTail;
}

/**
 * Runs a command (an absolute path) with stdin closed and PATH without node_modules/.bin; resolves
 * to whether it exited 0, how it ended and its last output.
 */
function run(cmd: string, args: string[], env: Env, onLine?: (line: string) => void): Promise<Ran> {
  return new Promise((resolve) => {
    const tail = new OutputTail(16_384);
    const child = spawn(cmd, args, { env: toolEnv(env), cwd: tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    tail.follow(child.stdout).follow(child.stderr);
    let partial = '';
    child.stdout.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) onLine?.(line);
    });
    child.once('error', (err) => {
      tail.add(err.message);
      resolve({ ok: false, status: err.message, tail });
    });
    child.once('close', (code, signal) => {
      resolve({ ok: code === 0, status: signal ? `signal ${signal}` : `exit code ${code}`, tail });
    });
  });
}

export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** "EACCES: permission denied" out of a Node.js file system error. */
export function shortError(err: unknown): string {
  return String((err as Error).message).split(',')[0]!;
}
