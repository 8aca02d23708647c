// Starts redis-server or FerretDB (SQLite backend) as a child process on a local port with its data
// in a directory, and stops it: one code path for demo's servers, the tests' and the benchmark's.
// Each listens on 127.0.0.1 only, with a password kept in its data directory (mode 0700): Redis's
// `requirepass`, and for FerretDB its (experimental in 1.24) authentication with a user set up on
// first start; clients get both in the URL.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitForPort } from '../ports.js';
import type { Binary, ServerName } from './binaries.js';
import { privateDir, serverSecret, SECRET_FILE } from './secret.js';
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
  /** false: no password (a test's stand-in for a server someone else runs); default: the one kept in `dataDir` */
  auth?: boolean;
  /** where the password is kept when not in `dataDir` (the nodes of one Redis Cluster share theirs) */
  secretDir?: string;
  /** a node of a Redis Cluster: how long a master may be unreachable before its replica takes over, and its bus port */
  cluster?: { nodeTimeoutMs: number; busPort: number };
}

export interface ServerProcess {
  binary: Binary;
  /** with the password: what clients connect with (print it through maskUrl) */
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

/** The user FerretDB is set up with (in its `admin` database, which the URL's default authSource names). */
export const FERRET_USER = 'influencer';

/** The URL clients use for a server of this kind on a local port, with its password when it has one. */
export function serverUrl(name: ServerName, port: number, secret?: string): string {
  if (name === 'redis-server') return `redis://${secret ? `:${secret}@` : ''}127.0.0.1:${port}`;
  return `mongodb://${secret ? `${FERRET_USER}:${secret}@` : ''}127.0.0.1:${port}`;
}

/** The data directory made private, the password, and the URL a server started with `o` will answer at. */
export function serverAddress(
  name: ServerName,
  o: Pick<LaunchOptions, 'port' | 'dataDir' | 'auth' | 'secretDir'>,
): string {
  privateDir(o.dataDir);
  return serverUrl(name, o.port, o.auth === false ? undefined : serverSecret(o.secretDir ?? o.dataDir).secret);
}

/** How to start the server: its arguments and environment (the password never on the command line, where `ps` shows it). */
function invocation(name: ServerName, o: LaunchOptions): { args: string[]; env: NodeJS.ProcessEnv } {
  privateDir(o.dataDir);
  const secret = o.auth === false ? undefined : serverSecret(o.secretDir ?? o.dataDir);
  if (name === 'redis-server') {
    const conf = join(o.dataDir, 'redis.conf');
    writeFileSync(conf, redisConf(o, secret?.secret), { mode: 0o600 });
    chmodSync(conf, 0o600);
    return { args: [conf], env: process.env };
  }
  if (secret?.fresh && existsSync(join(o.dataDir, 'admin.sqlite'))) {
    const why = `the FerretDB data in ${o.dataDir} has users, but its ${SECRET_FILE} file was made just now`;
    throw new SetupError([
      `${why}: restore that file, or remove ${join(o.dataDir, 'admin.sqlite')} to set up a new user`,
    ]);
  }
  const args = [
    '--handler=sqlite',
    `--sqlite-url=file:${o.dataDir}/`,
    `--listen-addr=127.0.0.1:${o.port}`,
    '--telemetry=disable',
    '--debug-addr=-',
    `--state-dir=${o.dataDir}`,
    '--log-level=error',
  ];
  if (!secret) return { args, env: process.env };
  // on a first start (no admin database yet) FerretDB creates the user; from then on every command needs it
  const auth = ['--test-enable-new-auth=true', `--setup-username=${FERRET_USER}`, '--setup-database=admin'];
  return { args: [...args, ...auth], env: { ...process.env, FERRETDB_SETUP_PASSWORD: secret.secret } };
}

/** redis.conf: loopback only, the password, the data directory and whether the data is kept. */
function redisConf(o: LaunchOptions, secret: string | undefined): string {
  const quoted = (v: string): string => `"${v.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
  const lines = [
    `port ${o.port}`,
    'bind 127.0.0.1',
    'protected-mode yes',
    `dir ${quoted(o.dataDir)}`,
    `appendonly ${o.persist ? 'yes' : 'no'}`,
    'save ""',
    ...(secret ? [`requirepass ${secret}`] : []),
    // a replica of a cluster logs in to its master with the same password
    ...(o.cluster
      ? [
          'cluster-enabled yes',
          'cluster-config-file nodes.conf',
          `cluster-node-timeout ${o.cluster.nodeTimeoutMs}`,
          // the default bus port (port + 10,000) may be taken, or past 65,535
          `cluster-port ${o.cluster.busPort}`,
        ]
      : []),
    ...(o.cluster && secret ? [`masterauth ${secret}`] : []),
  ];
  return `${lines.join('\n')}\n`;
}

/** Starts the server and resolves once it listens; a SetupError with its last output if it exits first. */
export async function launch(binary: Binary, o: LaunchOptions): Promise<ServerProcess> {
  const { args, env } = invocation(binary.name, o);
  const stdio: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
  const child = spawn(binary.path, args, { stdio, env, detached: o.detached ?? false });
  const output = new OutputTail().follow(child.stdout).follow(child.stderr);
  let ended: string | undefined;
  const exited = new Promise<string>((resolve) => {
    child.once('exit', (code, signal) => resolve(signal ? `signal ${signal}` : `exit code ${code}`));
    child.once('error', (err) => resolve(err.message));
  }).then((how) => (ended = how));
  const server: ServerProcess = {
    binary,
    url: serverAddress(binary.name, o),
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
