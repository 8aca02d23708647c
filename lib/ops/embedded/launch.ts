// Starts redis-server or FerretDB (SQLite backend) as a child process on a local port with its data
// in a directory, and stops it: one code path for demo's servers, the tests' and the benchmark's.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { waitForPort } from '../ports.js';
import type { Binary, ServerName } from './binaries.js';
import { SetupError } from './setup-error.js';
import { OutputTail } from './tail.js';
import { sleep } from '../../shared/util.js';

export interface LaunchOptions {
  port: number;
  dataDir: string;
  /** redis-server: keep the data in an append-only file, read at the next start (FerretDB's SQLite files always stay) */
  persist?: boolean;
  /** its own process group, so that a terminal's Ctrl-C reaches the parent only, which stops it when it is done with it */
  detached?: boolean;
  /** more arguments for the server (a Redis Cluster node's) */
  extraArgs?: string[];
}

export interface ServerProcess {
  binary: Binary;
  url: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** resolves once the process has exited, saying how: "exit code 1", "signal SIGKILL" */
  exited: Promise<string>;
  output: OutputTail;
  /** `signal` (SIGTERM: Redis writes its file, FerretDB closes its databases), SIGKILL after `timeoutMs` */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

/** The URL clients use for a server of this kind on a local port. */
export function serverUrl(name: ServerName, port: number): string {
  return `${name === 'redis-server' ? 'redis' : 'mongodb'}://127.0.0.1:${port}`;
}

export function serverArgs(name: ServerName, o: LaunchOptions): string[] {
  if (name === 'redis-server') {
    const persistence = o.persist ? ['--appendonly', 'yes', '--save', ''] : ['--appendonly', 'no', '--save', ''];
    return [
      '--port',
      String(o.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      o.dataDir,
      ...persistence,
      ...(o.extraArgs ?? []),
    ];
  }
  return [
    '--handler=sqlite',
    `--sqlite-url=file:${o.dataDir}/`,
    `--listen-addr=127.0.0.1:${o.port}`,
    '--telemetry=disable',
    '--debug-addr=-',
    `--state-dir=${o.dataDir}`,
    '--log-level=error',
  ];
}

/** Starts the server and resolves once it listens; a SetupError with its last output if it exits first. */
export async function launch(binary: Binary, o: LaunchOptions): Promise<ServerProcess> {
  mkdirSync(o.dataDir, { recursive: true });
  const stdio: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
  const child = spawn(binary.path, serverArgs(binary.name, o), { stdio, detached: o.detached ?? false });
  const output = new OutputTail().follow(child.stdout).follow(child.stderr);
  let ended: string | undefined;
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `exit code ${code}`));
    child.once('error', (err) => resolve(err.message));
  }).then((how) => (ended = how));
  const server: ServerProcess = {
    binary,
    url: serverUrl(binary.name, o.port),
    port: o.port,
    dataDir: o.dataDir,
    child,
    exited,
    output,
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (ended) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
  const failed = (): string[] => [`${binary.name} did not start on 127.0.0.1:${o.port} (${ended}); its last lines:`];
  try {
    await waitForPort(o.port, 30_000, () => (ended ? 'exited' : undefined));
  } catch (err) {
    await server.stop('SIGKILL');
    throw new SetupError(ended ? failed() : [`${binary.name} ${(err as Error).message}`], output.lines(5));
  }
  // another program may have had the port: then this one exits at once instead of listening
  await sleep(100);
  if (ended) throw new SetupError(failed(), output.lines(5));
  return server;
}
