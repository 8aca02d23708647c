// `npm run bench [-- --quick] [-- --only 1,4] [-- --only 10 --pks N --node-env NAME=value] [-- --only 11 --machines 1,2,4]`:
// starts its own mock, redis-server and FerretDB, runs
// the scenarios, prints a table per scenario, writes bench/results/<date>.json and appends a
// section to bench/results/RUNS.md. A scenario that throws is reported as failed; the others still run.
// Every child process is killed at the end, on an error and on Ctrl-C.
import { maskUrl } from '../lib/shared/mask-url.js';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createRedis, describeTarget } from '../lib/shared/redis.js';
import { createLogger } from '../lib/shared/log.js';
import { MongoClient } from 'mongodb';
import { PK_MIN, type Infra } from './cluster.js';
import { failover } from './failover.js';
import { benchMock } from './mock.js';
import { machineInfo, round } from './proc.js';
import { profileNode } from './profile.js';
import {
  appendRun,
  RUNS_FILE,
  formatDuration,
  gitCommit,
  textTable,
  writeJson,
  type RunInfo,
  type ScenarioOutcome,
  type Table,
} from './report.js';
import { readSide } from './read-side.js';
import { benchRing } from './ring.js';
import { scaleOut } from './scale-out.js';
import { startFerret, startMockProcess, startRedis, startRedisCluster } from './services.js';
import { killAll } from '../test/kit/children.js';
import { prioritizeBenchmark, removeMachines } from './cgroup.js';
import { singleNode } from './single-node.js';
import { storage } from './storage.js';
import { mission } from './mission.js';
import { scaleOutOnMachines } from './machines.js';
import { suspiciousImpact } from './suspicious.js';
import { applyCapacity } from './apply-capacity.js';
import {
  capacityTables,
  failoverTables,
  machinesTables,
  mockTables,
  missionTables,
  profileTables,
  readSideTables,
  ringTables,
  scaleOutTables,
  singleNodeTables,
  storageTables,
  suspiciousTables,
  type RingResult,
} from './tables.js';

const MINUTE = 60_000;
/** Cores left outside every quota of scenario 11: the mock, the benchmark itself, the kernel. */
const MOCK_RESERVE_CORES = 0.5;
const READ_SIDE_PKS = 1_000_000;

/** What each mode runs. Quick compresses time 6× (10 s intervals) and keeps the samples/s of the full run. */
function plan(quick: boolean) {
  // flushes scale with the interval, so a compressed run waits as long, relative to its interval, as a real one
  const flush = (intervalMs: number) =>
    intervalMs >= MINUTE ? undefined : Math.max(50, Math.round((1000 * intervalMs) / MINUTE));
  const s1Interval = quick ? 10_000 : MINUTE;
  const scale = MINUTE / s1Interval;
  // full: from 100k, so the counts around the targets (200k, 300k) fit the 20 minutes with scenarios 6–8
  const counts = quick ? [10_000, 50_000] : [100_000, 200_000, 300_000, 400_000, 500_000, 600_000, 800_000, 1_000_000];
  return {
    budgetMs: quick ? 118_000 : 19.5 * MINUTE,
    scale,
    single: {
      intervalMs: s1Interval,
      counts: counts.map((n) => Math.round(n / scale)),
      k: 2,
      warmupMs: quick ? 5000 : 45_000,
      ttlMs: quick ? 1500 : 3000,
      concurrency: 256,
      flushMaxAgeMs: flush(s1Interval),
    },
    scaleOut: quick
      ? {
          pks: 4000,
          intervalMs: 2000,
          nodeCounts: [1, 2, 4],
          k: 1,
          firstWarmupMs: 3000,
          warmupMs: 500,
          ttlMs: 1500,
          concurrency: 256,
          flushMaxAgeMs: flush(2000),
        }
      : {
          pks: 50_000,
          intervalMs: 10_000,
          nodeCounts: [1, 2, 4],
          k: 2,
          firstWarmupMs: 20_000,
          warmupMs: 10_000,
          ttlMs: 3000,
          concurrency: 256,
          flushMaxAgeMs: flush(10_000),
        },
    failover: quick
      ? { pks: 4000, intervalMs: 2000, ttlMs: 1500, concurrency: 256, flushMaxAgeMs: flush(2000), intervalsAfter: 1 }
      : {
          pks: 30_000,
          intervalMs: 10_000,
          ttlMs: 3000,
          concurrency: 256,
          flushMaxAgeMs: flush(10_000),
          intervalsAfter: 2,
        },
    mock: { seconds: quick ? 5 : 10, connections: 50 },
    // quick: a fiftieth of the pks and a second per route, so the whole quick run keeps to its 2 minutes
    readSide: quick
      ? {
          pks: READ_SIDE_PKS / 50,
          timelinePks: 2,
          seconds: 1,
          warmUpS: 0.3,
          connections: 50,
          timelineConnections: 2,
          timelineRequests: 4,
          lightConnections: 4,
        }
      : {
          pks: READ_SIDE_PKS,
          timelinePks: 20,
          seconds: 5,
          warmUpS: 1,
          connections: 50,
          timelineConnections: 2,
          timelineRequests: 8,
          lightConnections: 4,
        },
    // time compressed 6× in both modes: the samples/s of 200k (full) or 60k (quick) pks at one minute
    suspicious: {
      pks: quick ? 10_000 : 33_000,
      intervalMs: 10_000,
      k: quick ? 1 : 2,
      warmupMs: 5000,
      ttlMs: 3000,
      concurrency: 256,
      flushMaxAgeMs: flush(10_000),
      dailyMs: 86_400_000 / 6,
      stressMs: 60_000,
    },
    // time compressed 6× in both modes: the samples/s of 200k (full) or 60k (quick) pks at one minute
    profile: {
      pks: quick ? 10_000 : 33_000,
      intervalMs: 10_000,
      k: quick ? 1 : 3,
      ttlMs: 3000,
      concurrency: 256,
      flushMaxAgeMs: flush(10_000),
    },
    // one-minute points for 35 days (a month's read with a few days to spare), at rising pk counts
    // the whole mission: 1,000,000 pks every minute (quick: the same samples/s at 10 s intervals)
    mission: quick
      ? {
          pks: 166_667,
          intervalMs: 10_000,
          nodes: 1,
          k: 3,
          warmupMs: 15_000,
          ttlMs: 3000,
          concurrency: 512,
          flushMaxAgeMs: flush(10_000),
        }
      : {
          pks: 1_000_000,
          intervalMs: MINUTE,
          nodes: 1,
          // five whole minutes: the mission's on-time figure is over at least that
          k: 5,
          warmupMs: 60_000,
          ttlMs: 3000,
          concurrency: 512,
          flushMaxAgeMs: flush(MINUTE),
        },
    // node-machines of 0.1 core: 8 of them, Redis, FerretDB and the mock fit in 2 cores; time compressed 6×
    capacity: {
      masters: 3,
      cores: 0.2,
      pks: quick ? 200_000 : 1_000_000,
      seconds: quick ? 8 : 20,
      rounds: quick ? 1 : 3,
    },
    machines: {
      nodeCounts: quick ? [1, 2, 4] : [1, 2, 4, 8],
      nodeCores: 0.1,
      redisCores: 0.25,
      storeCores: 0.25,
      redisMasters: 1,
      firstPks: 8000,
      maxTrials: quick ? 3 : 6,
      precision: quick ? 0.25 : 0.1,
      intervalMs: 10_000,
      k: quick ? 1 : 2,
      // unthrottled for ≥ 5 s (its start-up's catch-up), then an interval under its quota before the window
      warmupMs: 15_000,
      ttlMs: 3000,
      concurrency: 256,
      flushMaxAgeMs: flush(10_000),
    },
    // 35 days of one-minute points (a month's read with days to spare) at 5, 50 and 500 million samples
    storage: quick
      ? { fills: [20], days: 35, reads: 50, rebuildPks: [10_000, 100_000], rebuildLogMinutes: 30 }
      : { fills: [100, 1000, 10_000], days: 35, reads: 200, rebuildPks: [100_000, 1_000_000], rebuildLogMinutes: 30 },
  };
}

type MachinePlan = ReturnType<typeof plan>['machines'];

/** The run's servers: one redis-server, or (`redisMasters` > 1) a Redis Cluster of that many masters. */
async function startInfra(redisMasters: number): Promise<Infra> {
  const [cluster, ferret, mock] = await Promise.all([
    redisMasters > 1 ? startRedisCluster(redisMasters) : startRedis().then((r) => ({ masters: [r], nodes: '' })),
    startFerret(),
    startMockProcess(PK_MIN, 1_000_000),
  ]);
  const masters = cluster.masters.map((m, i) => ({ ...m, name: i === 0 ? 'redis' : `redis${i + 1}` }));
  const target = cluster.nodes ? { clusterNodes: cluster.nodes.split(',') } : masters[0]!.url;
  const redisClient = createRedis(target, createLogger('silent'), 'bench', { maxRetriesPerRequest: 2 });
  redisClient.on('error', () => undefined);
  await redisClient.connect();
  const redisEnv: Record<string, string> = cluster.nodes
    ? { REDIS_CLUSTER_NODES: cluster.nodes }
    : { REDIS_URL: masters[0]!.url };
  const mongo = new MongoClient(ferret.url, { serverSelectionTimeoutMS: 10_000 });
  return { redis: masters[0]!, redisMasters: masters, redisEnv, ferret, mock, redisClient, mongo };
}

/** A bad flag: said in one line, without a stack. */
class UsageError extends Error {}

/** Every scenario by its number, as --only takes it and --help lists it. */
const SCENARIOS: Record<number, string> = {
  1: 'Single node, rising pks',
  2: 'Scale-out',
  3: 'Rebalancing (ring)',
  4: 'Failover (SIGKILL of one of three nodes)',
  5: 'The mock alone',
  6: 'Read side (serve)',
  7: 'On time with and without the daily is_suspicious check',
  8: 'Profile of one node under load',
  9: 'Storage: disk, store CPU, timeline reads, rebuild',
  10: 'The mission: 1,000,000 pks every minute on this machine',
  11: 'Scale-out on machines: nodes, Redis and FerretDB in CPU quotas of their own',
  12: 'Redis apply capacity: one master against a Redis Cluster, each master in a CPU quota',
};

const USAGE = `usage: npm run bench -- [--quick] [--only N,N,...] [--pks N] [--nodes N] [--interval-s S] [--node-env NAME=value ...]
                          [--machines N,N,...] [--node-cores C] [--redis-cores C] [--store-cores C] [--redis-masters M]
   or: node dist/bench/run.js [same flags]

Starts its own mock, redis-server and FerretDB, runs the scenarios, prints a table per scenario,
writes bench/results/<date>.json and appends a section to bench/results/RUNS.md.

Flags:
  --quick               under 2 minutes: scenarios 1-5 with time compressed 6x (default: 1-8, about 20 minutes)
  --only N,N,...        only these scenarios (9, 10 and 11 alone take 25, 5 and 20 minutes; 11 --quick 5;
                        12 takes 6, quick 1)
  --pks N               the mission's pk count, 1 to 1,000,000 (with --only 10)
  --nodes N             the mission's nodes sharing the pks, 1 to 4 (default 1; with --only 10)
  --interval-s S        the mission's interval in seconds, 10 to 600 (default 60, quick 10; with --only 10)
  --node-env NAME=value a setting for the mission's nodes, repeatable (with --only 10)
  --machines N,N,...    node counts of scenario 11, each node a machine (default 1,2,4,8; quick 1,2,4)
  --node-cores C        CPU quota of each node in cores (default 0.1), with --only 11
  --redis-cores C       CPU quota of each Redis master (default 0.25; 0.2 with --only 12), with --only 11 or 12
  --store-cores C       CPU quota of FerretDB (default 0.25), with --only 11
  --redis-masters M     1: one redis-server (default); 2 to 16: a Redis Cluster of M masters (with --only 6
                        or 10: the run's Redis; with --only 11: each step's, each master its own quota;
                        with --only 12: the cluster compared with one master, default 3)
  -h, --help            this text

Scenarios:
${Object.entries(SCENARIOS)
  .map(([id, name]) => `  ${id.padStart(2)}  ${name}`)
  .join('\n')}
`;

/** `--node-env NAME=value` (repeatable): settings for the mission's nodes, so a change can be measured against the default. */
function settingsOf(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of pairs) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(pair);
    if (!m) throw new UsageError(`--node-env ${pair}: expected NAME=value, e.g. CONCURRENCY=512`);
    env[m[1]!] = m[2]!;
  }
  return env;
}

function commandLine(argv: string[]): string {
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  return `node dist/bench/run.js${argv.length ? ` ${argv.join(' ')}` : ''}`;
}

/** The flags, or a UsageError naming the bad one (an unknown flag, a missing value). */
function parseFlags(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      options: {
        quick: { type: 'boolean', default: false },
        only: { type: 'string' },
        'node-env': { type: 'string', multiple: true },
        pks: { type: 'string' },
        nodes: { type: 'string' },
        'interval-s': { type: 'string' },
        machines: { type: 'string' },
        'node-cores': { type: 'string' },
        'redis-cores': { type: 'string' },
        'store-cores': { type: 'string' },
        'redis-masters': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A quota in cores from its flag: above 0 (at least the 1 ms per 100 ms CFS allows), at most the machine. */
function coresOf(flag: string, value: string): number {
  const c = Number(value);
  if (!Number.isFinite(c) || c < 0.01 || c > cpus().length)
    throw new UsageError(`--${flag} ${value}: expected cores from 0.01 to ${cpus().length}, e.g. 0.1`);
  return c;
}

/** The flags of scenario 11 into its plan; quotas that leave the mock under half a core are refused. */
function machineFlags(
  values: ReturnType<typeof parseFlags>['values'],
  m: MachinePlan,
  only: Set<number> | undefined,
): void {
  const given = ['machines', 'node-cores', 'store-cores'] as const;
  if (given.some((f) => values[f] !== undefined) && !only?.has(11))
    throw new UsageError(
      `--${given.find((f) => values[f] !== undefined)}: applies to scale-out on machines: run it with --only 11`,
    );
  if (values['redis-cores'] !== undefined && !only?.has(11) && !only?.has(12))
    throw new UsageError('--redis-cores: applies to scenarios 11 and 12: run it with --only 11 or 12');
  if (values.machines !== undefined) {
    const counts = values.machines.split(',').map(Number);
    if (counts.some((n) => !Number.isInteger(n) || n < 1 || n > 32))
      throw new UsageError(`--machines ${values.machines}: expected node counts from 1 to 32, e.g. 1,2,4,8`);
    m.nodeCounts = [...new Set(counts)].sort((a, b) => a - b);
  }
  if (values['node-cores'] !== undefined) m.nodeCores = coresOf('node-cores', values['node-cores']);
  if (values['redis-cores'] !== undefined) m.redisCores = coresOf('redis-cores', values['redis-cores']);
  if (values['store-cores'] !== undefined) m.storeCores = coresOf('store-cores', values['store-cores']);
  if (values['redis-masters'] !== undefined) {
    const masters = Number(values['redis-masters']);
    if (!Number.isInteger(masters) || masters < 1 || masters > 16)
      throw new UsageError(`--redis-masters ${values['redis-masters']}: expected 1 (one redis-server) to 16`);
    m.redisMasters = masters;
    if (![6, 10, 11, 12].some((id) => only?.has(id)))
      throw new UsageError(
        '--redis-masters: applies to scenarios 6, 10, 11 and 12: run it with --only 6, 10, 11 or 12',
      );
    if (only?.has(12) && masters < 2)
      throw new UsageError(`--redis-masters ${masters}: scenario 12 compares one master with a cluster of 2 to 16`);
  }
  const quotas = Math.max(...m.nodeCounts) * m.nodeCores + m.redisMasters * m.redisCores + m.storeCores;
  // quotas are ceilings, not guarantees: the mock, the benchmark and the kernel need the rest
  if (only?.has(11) && quotas > cpus().length - MOCK_RESERVE_CORES)
    throw new UsageError(
      `the quotas add up to ${round(quotas, 2)} of this machine's ${cpus().length} cores, leaving under ${MOCK_RESERVE_CORES} for the mock and the benchmark: lower --node-cores, --redis-cores or --store-cores, or --machines`,
    );
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const { values } = parseFlags(argv);
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const quick = values.quick ?? false;
  const only = values.only ? new Set(values.only.split(',').map(Number)) : undefined;
  const p = plan(quick);
  // the mission at another pk count: a load every variant keeps up with, to compare their CPU per sample
  if (values.pks !== undefined) {
    const pks = Number(values.pks);
    if (!Number.isInteger(pks) || pks < 1 || pks > 1_000_000)
      throw new UsageError(`--pks ${values.pks}: expected an integer from 1 to 1,000,000`);
    p.mission.pks = pks;
  }
  if (values['interval-s'] !== undefined) {
    const seconds = Number(values['interval-s']);
    if (!Number.isInteger(seconds) || seconds < 10 || seconds > 600)
      throw new UsageError(`--interval-s ${values['interval-s']}: expected whole seconds from 10 to 600`);
    p.mission.intervalMs = seconds * 1000;
  }
  if (values.nodes !== undefined) {
    const nodes = Number(values.nodes);
    if (!Number.isInteger(nodes) || nodes < 1 || nodes > 4)
      throw new UsageError(`--nodes ${values.nodes}: expected an integer from 1 to 4`);
    p.mission.nodes = nodes;
  }
  const nodeEnv = settingsOf(values['node-env'] ?? []);
  const missionFlags = [values.pks, values.nodes, values['interval-s']].some((v) => v !== undefined);
  if ((missionFlags || Object.keys(nodeEnv).length > 0) && !only?.has(10)) {
    throw new UsageError('--pks, --nodes, --interval-s and --node-env apply to the mission: run them with --only 10');
  }
  machineFlags(values, p.machines, only);
  if (values['redis-masters'] !== undefined) p.capacity.masters = p.machines.redisMasters;
  if (values['redis-cores'] !== undefined) p.capacity.cores = p.machines.redisCores;
  const started = Date.now();
  // the storage scenario alone fills half a billion samples, the mission and the machines run minutes: budgets of their own
  const alone = only?.size === 1 && !quick && (only.has(9) || only.has(10) || only.has(11));
  const quickMachines = only?.size === 1 && quick && only.has(11);
  const deadline = started + (alone ? 45 * MINUTE : quickMachines ? 12 * MINUTE : p.budgetMs);
  const machine = machineInfo();
  // other work on a shared box: the benchmark's processes run at the highest CPU weight where cgroups allow
  const unprioritized = prioritizeBenchmark();
  const info: RunInfo = {
    date: new Date(started).toISOString(),
    mode: quick ? 'quick' : 'full',
    command: commandLine(argv),
    machine,
    commit: gitCommit(),
    node: process.version,
    cpuWeight: unprioritized
      ? `the default (${unprioritized})`
      : "the benchmark's processes at cgroup v1's highest weight, ahead of other work on the box",
  };
  console.log(`CPU weight: ${info.cpuWeight}`);
  console.log(
    `influencer-node benchmark (${info.mode}${quick ? `, time compressed ${p.scale}×` : ''}) on ${machine.cores} cores, ${machine.cpuModel}, ${machine.memory}; commit ${info.commit}, node ${info.node}`,
  );

  // the ring and mock scenarios need no servers: they still run if these do not start
  let infra: Infra | undefined;
  let infraError = '';
  // scenario 12 starts its own Redis per round: alone, it needs none of the run's servers
  if (only?.size === 1 && only.has(12)) infraError = 'scenario 12 runs without the shared servers';
  else
    try {
      // scenario 11 starts its own Redis Cluster per step; 6 and 10 run on the run's
      infra = await startInfra(only?.has(11) ? 1 : p.machines.redisMasters);
      const redis = infra.redisEnv.REDIS_CLUSTER_NODES
        ? describeTarget({ clusterNodes: infra.redisEnv.REDIS_CLUSTER_NODES.split(',') })
        : maskUrl(infra.redis.url);
      console.log(`servers: redis ${redis}, ferretdb ${maskUrl(infra.ferret.url)}, mock ${infra.mock.url}\n`);
    } catch (err) {
      infraError = `servers did not start: ${err instanceof Error ? err.message : String(err)}`;
      console.log(`${infraError}\n`);
    }
  const servers = (): Infra => {
    if (!infra) throw new Error(infraError);
    return infra;
  };

  const progress = (line: string) => console.log(line);
  const scenarios: Array<{ id: number; name: string; run: () => Promise<{ result: unknown; tables: Table[] }> }> = [
    {
      id: 3,
      name: SCENARIOS[3],
      run: async () => {
        const r = (await benchRing()) as unknown as RingResult;
        return { result: r, tables: ringTables(r) };
      },
    },
    {
      id: 5,
      name: SCENARIOS[5],
      run: async () => {
        const cpu0 = process.cpuUsage();
        const t0 = performance.now();
        const r = await benchMock(p.mock);
        const cpu = process.cpuUsage(cpu0);
        const clientCpuPercent = round(((cpu.user + cpu.system) / 1000 / (performance.now() - t0)) * 100, 1);
        const out = { ...r, ...p.mock, clientCpuPercent };
        return { result: out, tables: mockTables(out, machine.cores) };
      },
    },
    {
      id: 2,
      name: SCENARIOS[2],
      run: async () => {
        const r = await scaleOut(servers(), { ...p.scaleOut, cores: machine.cores, deadline }, progress);
        return { result: r, tables: scaleOutTables(r) };
      },
    },
    {
      id: 4,
      name: SCENARIOS[4],
      run: async () => {
        const r = await failover(servers(), { ...p.failover, deadline }, progress);
        return { result: r, tables: failoverTables(r) };
      },
    },
    {
      id: 6,
      name: SCENARIOS[6],
      run: async () => {
        const r = await readSide(servers(), { ...p.readSide, deadline, cores: machine.cores }, progress);
        return { result: r, tables: readSideTables(r, READ_SIDE_PKS) };
      },
    },
    {
      id: 1,
      name: SCENARIOS[1],
      run: async () => {
        const r = await singleNode(servers(), { ...p.single, deadline, cores: machine.cores }, progress);
        return { result: { ...r, timeCompressed: p.scale }, tables: singleNodeTables(r, p.scale) };
      },
    },
    {
      id: 7,
      name: SCENARIOS[7],
      run: async () => {
        const r = await suspiciousImpact(servers(), { ...p.suspicious, deadline, cores: machine.cores }, progress);
        return { result: r, tables: suspiciousTables(r, MINUTE / p.suspicious.intervalMs) };
      },
    },
    {
      id: 9,
      name: SCENARIOS[9],
      run: async () => {
        const r = await storage(servers().redis.url, { ...p.storage, deadline }, progress);
        return { result: r, tables: storageTables(r) };
      },
    },
    {
      id: 10,
      name: SCENARIOS[10],
      run: async () => {
        const r = await mission(servers(), { ...p.mission, deadline, cores: machine.cores, env: nodeEnv }, progress);
        return { result: r, tables: missionTables(r) };
      },
    },
    {
      id: 11,
      name: SCENARIOS[11],
      run: async () => {
        const r = await scaleOutOnMachines(servers(), { ...p.machines, deadline }, progress);
        return { result: r, tables: machinesTables(r) };
      },
    },
    {
      id: 12,
      name: SCENARIOS[12],
      run: async () => {
        const r = await applyCapacity(p.capacity, progress);
        return { result: r, tables: capacityTables(r) };
      },
    },
    {
      id: 8,
      name: SCENARIOS[8],
      run: async () => {
        const r = await profileNode(servers(), p.profile, progress);
        return { result: r, tables: profileTables(r) };
      },
    },
  ];

  // quick: the single node first, where its 10 s boundaries waste least; full: last, climbing with
  // the time left. Scenarios 6–8 do not fit the quick run's 2 minutes: `--quick --only 6,7,8` runs them
  const order = quick ? [1, 3, 5, 4, 2] : [3, 5, 6, 2, 4, 7, 8, 1];
  const rank = (id: number): number => (order.includes(id) ? order.indexOf(id) : order.length + id);
  scenarios.sort((a, b) => rank(a.id) - rank(b.id));
  const outcomes: ScenarioOutcome[] = [];
  for (const sc of scenarios) {
    if (only ? !only.has(sc.id) : !order.includes(sc.id)) continue;
    console.log(`== ${sc.id}. ${sc.name}`);
    const t0 = Date.now();
    try {
      const { result, tables } = await sc.run();
      const seconds = round((Date.now() - t0) / 1000, 1);
      outcomes.push({ id: sc.id, name: sc.name, ok: true, seconds, result, tables });
      for (const t of tables) console.log(`\n${textTable(t)}`);
      console.log(`(${seconds} s)\n`);
    } catch (err) {
      const seconds = round((Date.now() - t0) / 1000, 1);
      const message = err instanceof Error ? err.message : String(err);
      outcomes.push({ id: sc.id, name: sc.name, ok: false, seconds, error: message, tables: [] });
      console.log(`FAILED after ${seconds} s: ${message}\n`);
    }
  }

  infra?.redisClient.disconnect();
  await infra?.mongo.close().catch(() => undefined);
  killAll();
  info.durationS = round((Date.now() - started) / 1000, 1);
  const json = writeJson(info, outcomes);
  appendRun(info, outcomes, json);
  const failed = outcomes.filter((o) => !o.ok);
  console.log(`run time ${formatDuration(info.durationS)}; results in ${json}, section appended to ${RUNS_FILE}`);
  if (failed.length) console.log(`failed: ${failed.map((o) => `${o.id}. ${o.name}: ${o.error}`).join('; ')}`);
  return failed.length ? 1 : 0;
}

// the CPU quotas first (moving a running process out always works, an exiting one's group stays busy a moment), then the children
const stopEverything = (): void => {
  removeMachines();
  killAll();
};
process.on('exit', stopEverything);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    console.error(`\n${signal}: stopping every child process`);
    stopEverything();
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    stopEverything();
    if (err instanceof UsageError) {
      console.error(`bench: ${err.message} (npm run bench -- --help lists the flags)`);
      process.exit(2);
    }
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
