import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { openApi, type ApiServer } from '../../read/api.js';
import { numberFlag } from './flags.js';
import { MAX_UNIVERSE, SETTINGS, isGiven, type Config, type SettingName } from '../../ops/config.js';
import { EmbeddedServers } from '../../ops/embedded/servers.js';
import { SetupError } from '../../ops/embedded/setup-error.js';
import { createLogger, type Logger } from '../../ops/log.js';
import { startMock, type MockServer } from '../../mock/mockstagram.js';
import { portFree } from '../../ops/ports.js';
import { describeUnreachable, unreachableServers } from '../../ops/preflight.js';
import { connectRedis, createRedis } from '../../shared/redis.js';
import { untilSignal } from '../../ops/signals.js';
import { readStatus, type ClusterStatus } from '../../cluster/status.js';
import { PACKAGE_ROOT } from '../../ops/version.js';

const SUMMARY_EVERY_MS = 3000;

interface DemoNode { id: string; child: ChildProcess; exited: Promise<number | null> }

/**
 * `influencer-node demo`: the bundled mock (in this process), N nodes (`influencer-node start` child
 * processes), and the API with the dashboard, against REDIS_URL / MONGO_URL or servers of its own
 * (EmbeddedServers); a one-line summary every few seconds. Ctrl-C stops the nodes first (SIGTERM:
 * they hand over and flush), then the API, then the mock, then the servers it started.
 */
export async function demoCommand(config: Config, opts: Record<string, unknown>): Promise<number> {
  const nodeCount = numberFlag('nodes', opts.nodes, 1, 64, true);
  const pks = numberFlag('pks', opts.pks, 1, MAX_UNIVERSE, true);
  const port = numberFlag('port', opts.port, 0, 65535, true);
  const mockPort = numberFlag('mock-port', opts.mockPort, 0, 65535, true);
  const host = String(opts.host);
  // the summary lines tell the story; logs only for warnings (LOG_LEVEL=debug shows everything)
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'demo');
  const write = (text: string): void => { process.stdout.write(text); };
  const out = (line: string): void => write(`${line}\n`);

  // before starting anything: a taken port would otherwise fail only after the servers started
  await mustBeFree(port, host, 'port');
  await mustBeFree(mockPort, '127.0.0.1', 'mock-port');
  const given = { redis: isGiven('redisUrl', opts), mongo: isGiven('mongoUrl', opts) };
  const servers = await EmbeddedServers.open(config, given, write);
  const { redisUrl, mongoUrl } = servers;
  const demo: Config = { ...config, pkMax: config.pkMin + pks - 1, redisUrl, mongoUrl };
  const down = await unreachableServers(demo);
  if (down.length > 0) {
    for (const u of down) process.stderr.write(`influencer-node: ${describeUnreachable(u)}\n`);
    await servers.stop();
    return 1;
  }
  for (const line of servers.lines()) out(line);
  const signal = untilSignal(log);
  const nodes: DemoNode[] = [];
  let mock: MockServer | undefined;
  let api: ApiServer | undefined;
  // a second Ctrl-C exits at once: take the nodes along rather than orphan them
  const killAll = (): void => { for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL'); };
  process.on('exit', killAll);
  const redis = createRedis(demo.redisUrl, log, `${demo.cluster}:demo`);
  let summaryTimer: NodeJS.Timeout | undefined;
  let stopping = false;
  try {
    mock = await startMock({ host: '127.0.0.1', port: mockPort, pkMin: demo.pkMin, count: pks });
    out(`mock      ${mock.url}  (${pks} influencers, pks ${demo.pkMin}..${demo.pkMax})`);
    api = await openApi(demo, log, { host, port });
    await connectRedis(redis, demo.redisUrl, log);
    for (let i = 1; i <= nodeCount; i++) nodes.push(spawnNode(`demo-${i}`, i - 1, demo, mock.url, log));
    out(`nodes     ${nodes.map((n) => n.id).join(', ')}  (cluster ${demo.cluster}, one sample per pk every ${demo.intervalMs} ms)`);
    out(`dashboard ${api.url}/`);
    out('Ctrl-C stops everything.');

    const summary = async (): Promise<void> => {
      try {
        out(summaryLine(await readStatus(redis, demo), nodeCount, pks));
      } catch (err) {
        out(`${clock()}  cluster status unavailable: ${(err as Error).message}`);
      }
      if (!stopping) summaryTimer = setTimeout(() => void summary(), SUMMARY_EVERY_MS);
    };
    summaryTimer = setTimeout(() => void summary(), SUMMARY_EVERY_MS);

    // what ends the demo: Ctrl-C, or else a node or a server it started exiting on its own
    const nodeExit = Promise.race(nodes.map(async (n) => {
      const code = await n.exited;
      return [`influencer-node: node ${n.id} exited with code ${code} before Ctrl-C: stopping the demo`];
    }));
    const serverExit = servers.died.then((d) => [`influencer-node: ${d.line}`, ...d.tail.map((l) => `  | ${l}`)]);
    const failure = await Promise.race([signal.then(() => null), nodeExit, serverExit]);
    for (const line of failure ?? []) process.stderr.write(`${line}\n`);
    return (await stopAll()) && !failure ? 0 : 1;
  } catch (err) {
    await stopAll();
    throw err;
  } finally {
    process.off('exit', killAll);
  }

  /** Nodes first (SIGTERM, wait for their flush), then the API, the mock, the servers it started; true if every node exited 0. */
  async function stopAll(): Promise<boolean> {
    stopping = true;
    clearTimeout(summaryTimer);
    const order = `the nodes first (they hand over and flush), then the dashboard, then the mock${servers.started ? ', then the servers' : ''}`;
    if (nodes.length > 0) out(`stopping: ${order}`);
    const deadline = Math.max(30_000, 3 * demo.intervalMs) + demo.heartbeatTtlMs + 5000;
    const codes = await Promise.all(nodes.map(async (n) => {
      if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGTERM');
      const timer = setTimeout(() => n.child.kill('SIGKILL'), deadline);
      const code = await n.exited;
      clearTimeout(timer);
      return code;
    }));
    if (nodes.length > 0) out(`nodes stopped (exit codes ${codes.join(', ')})`);
    await api?.close();
    await mock?.close();
    redis.disconnect();
    const stopped = await servers.stop();
    if (stopped) out(stopped);
    out('stopped');
    return codes.every((c) => c === 0);
  }
}

/** A SetupError naming the flag when another program listens on `port` (0: any free port, always fine). */
async function mustBeFree(port: number, host: string, flag: string): Promise<void> {
  if (port > 0 && !(await portFree(port, host))) {
    const why = `port ${port} on ${host} (--${flag}) is taken by another program`;
    throw new SetupError([`${why}: pass --${flag} with a free one, or 0 for any`]);
  }
}

/** One `influencer-node start` child with this demo's settings; its warnings are forwarded, prefixed with its id. */
function spawnNode(id: string, index: number, config: Config, mockUrl: string, log: Logger): DemoNode {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, s] of Object.entries(SETTINGS) as [SettingName, { env: string }][]) env[s.env] = String(config[key]);
  Object.assign(env, { NODE_ID: id, MOCKSTAGRAM_URL: mockUrl, LOG_LEVEL: log.level });
  // each node its own metrics port, if asked for: METRICS_PORT, +1, +2, ...
  if (Number(env.METRICS_PORT) > 0) env.METRICS_PORT = String(Number(env.METRICS_PORT) + index);
  // its own process group: a terminal's Ctrl-C reaches the demo only, which then stops the nodes in order
  const child = spawn(process.execPath, [binPath(), 'start'], { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let partial = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) process.stderr.write(`[${id}] ${line}\n`);
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? (sig ? 128 : null)));
    child.once('error', (err) => { log.error({ node: id, err: err.message }, 'could not start node'); resolve(1); });
  });
  return { id, child, exited };
}

function binPath(): string {
  return join(PACKAGE_ROOT, 'bin', 'influencer-node.js');
}

/** members, owned pks, samples stored in the last complete interval, on-time share, missed, write queue. */
export function summaryLine(s: ClusterStatus, expectedNodes: number, pks: number): string {
  const active = s.members.filter((m) => m.readable && m.state === 'active');
  const sum = (key: string): number => active.reduce((a, m) => a + (Number(m.stats?.[key]) || 0), 0);
  const samples = sum('samplesLastInterval');
  const weighted = active.reduce((a, m) => {
    const pct = m.stats?.onTimePct;
    const n = Number(m.stats?.samplesLastInterval) || 0;
    return typeof pct === 'number' ? { pct: a.pct + pct * n, n: a.n + n } : a;
  }, { pct: 0, n: 0 });
  const onTime = weighted.n > 0 ? `${(weighted.pct / weighted.n).toFixed(1)}%` : '-';
  return `${clock()}  members ${active.length}/${expectedNodes} active  owned ${sum('owned')}/${pks}  samples/interval ${samples}  on-time ${onTime}  missed ${sum('missed')}  queue ${sum('writeQueue')}`;
}

function clock(): string {
  return new Date().toISOString().slice(11, 19);
}
