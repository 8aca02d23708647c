import { openApi, type ApiServer } from '../../read/api.js';
import { numberFlag, UsageError } from '../flags.js';
import { MAX_UNIVERSE, isGiven, type Config } from '../../ops/config.js';
import { EmbeddedServers } from '../../ops/embedded/servers.js';
import { SetupError } from '../../ops/embedded/setup-error.js';
import { createLogger } from '../../shared/log.js';
import { startMock, type MockServer } from '../../mock/mockstagram.js';
import { portFree } from '../../ops/ports.js';
import { describeUnreachable, unreachableServers } from '../../ops/preflight.js';
import { connectRedis, createRedis, redisTarget } from '../../shared/redis.js';
import { untilSignal } from '../../ops/signals.js';
import { readStatus } from '../../cluster/status.js';
import { killNodes, spawnNode, stopNodes, type DemoNode } from '../demo/nodes.js';
import { SummaryLines, summaryLine } from '../demo/summary.js';

const SUMMARY_EVERY_MS = 3000;

/**
 * `influencer-node demo`: the bundled mock (in this process), N nodes (`influencer-node start` child
 * processes), and the API with the dashboard, against REDIS_URL / MONGO_URL or servers of its own
 * (EmbeddedServers); a one-line summary every few seconds. Ctrl-C stops the nodes first (SIGTERM:
 * they hand over and flush), then the API, then the mock, then the servers it started.
 */
export async function demoCommand(config: Config, opts: Record<string, unknown>): Promise<number> {
  const nodeCount = numberFlag('nodes', opts.nodes, 1, 64, true);
  const pks = numberFlag('pks', opts.pks, 1, MAX_UNIVERSE, true);
  const port = opts.port === undefined ? config.servePort : numberFlag('port', opts.port, 0, 65535, true);
  const mockPort = numberFlag('mock-port', opts.mockPort, 0, 65535, true);
  const host = opts.host === undefined ? config.serveHost : String(opts.host);
  // the summary lines tell the story; logs only for warnings (LOG_LEVEL=debug shows everything)
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'demo');
  const write = (text: string): void => {
    process.stdout.write(text);
  };
  const out = (line: string): void => write(`${line}\n`);

  // before starting anything: a taken port would otherwise fail only after the servers started
  await mustBeFree(port, host, 'port');
  await mustBeFree(mockPort, '127.0.0.1', 'mock-port');
  const redisCluster =
    opts.redisCluster === undefined ? undefined : numberFlag('redis-cluster', opts.redisCluster, 1, 16, true);
  const clusterGiven = config.redisClusterNodes.length > 0;
  if (redisCluster !== undefined && (clusterGiven || isGiven('redisUrl', opts)))
    throw new UsageError(
      '--redis-cluster starts a Redis Cluster of its own: leave REDIS_URL and REDIS_CLUSTER_NODES unset',
    );
  const given = { redis: isGiven('redisUrl', opts) || clusterGiven, mongo: isGiven('mongoUrl', opts), redisCluster };
  const servers = await EmbeddedServers.open(config, given, write);
  const { redisUrl, mongoUrl } = servers;
  const redisClusterNodes = clusterGiven ? config.redisClusterNodes : servers.redisClusterNodes;
  const demo: Config = { ...config, pkMax: config.pkMin + pks - 1, redisUrl, redisClusterNodes, mongoUrl };
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
  const killAll = (): void => killNodes(nodes);
  process.on('exit', killAll);
  const target = redisTarget(demo);
  const redis = createRedis(target, log, `${demo.cluster}:demo`);
  let summaries: SummaryLines | undefined;
  try {
    mock = await startMock({ host: '127.0.0.1', port: mockPort, pkMin: demo.pkMin, count: pks });
    out(`mock      ${mock.url}  (${pks} influencers, pks ${demo.pkMin}..${demo.pkMax})`);
    api = await openApi(demo, log, { host, port });
    await connectRedis(redis, target, log);
    for (let i = 1; i <= nodeCount; i++) nodes.push(spawnNode(`demo-${i}`, i - 1, demo, mock.url, log));
    out(
      `nodes     ${nodes.map((n) => n.id).join(', ')}  (cluster ${demo.cluster}, one sample per pk every ${demo.intervalMs} ms)`,
    );
    out(`dashboard ${api.url}/`);
    out('Ctrl-C stops everything.');

    summaries = new SummaryLines(
      async () => summaryLine(await readStatus(redis, demo), nodeCount, pks),
      out,
      SUMMARY_EVERY_MS,
      log,
    );

    // what ends the demo: Ctrl-C, or else a node or a server it started exiting on its own
    const nodeExit = Promise.race(
      nodes.map(async (n) => {
        const code = await n.exited;
        return [`influencer-node: node ${n.id} exited with code ${code} before Ctrl-C: stopping the demo`];
      }),
    );
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
    await summaries?.stop();
    const order =
      'the nodes first (they hand over and flush), then the dashboard, then the mock' +
      (servers.started ? ', then the servers' : '');
    if (nodes.length > 0) out(`stopping: ${order}`);
    const deadline = Math.max(30_000, 3 * demo.intervalMs) + demo.heartbeatTtlMs + 5000;
    const codes = await stopNodes(nodes, deadline);
    if (nodes.length > 0) out(`nodes stopped (exit codes ${codes.join(', ')})`);
    await api?.stop();
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
