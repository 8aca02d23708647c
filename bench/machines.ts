// Scenario 11: scale-out on machines. Every node, every Redis master and FerretDB runs in a CPU
// quota of its own (a "machine", bench/cgroup.ts); the mock runs without one, only accounted, and a
// probe outside every quota times its answers. For each node count a short search raises the pks
// until the configuration is just on time; each step reports the pks carried, samples/s, every
// process's CPU per stored sample from its cgroup, the efficiency throughput(N) / (N × throughput(1))
// and the machine busiest against its quota. The Redis side is one redis-server, or a Redis Cluster
// of M masters (each a machine) for nodes that read REDIS_CLUSTER_NODES.
import { createRedis } from '../lib/shared/redis.js';
import { createLogger } from '../lib/shared/log.js';
import type { Infra } from './cluster.js';
import { PERIOD_US, quotaSupport, removeMachines } from './cgroup.js';
import { machineTrial, Machines, type Trial, type TrialSettings } from './machine-trial.js';
import { round } from './proc.js';
import { startRedisCluster } from './services.js';
import { stopChild } from '../test/kit/children.js';

export interface MachinesOptions extends Omit<TrialSettings, 'env'> {
  nodeCounts: number[];
  /** quotas in cores of each Redis master and of FerretDB (each node's is `nodeCores`) */
  redisCores: number;
  storeCores: number;
  /** 1: one plain redis-server (REDIS_URL); more: a Redis Cluster of that many masters (REDIS_CLUSTER_NODES) */
  redisMasters: number;
  /** pks per interval the search starts from with one node */
  firstPks: number;
  /** trials per node count at most; the search ends sooner once the smallest late count is within `precision` of the largest on time */
  maxTrials: number;
  precision: number;
  deadline: number;
}

export interface MachinesStep {
  nodes: number;
  /** the largest count on time, and the smallest late one, if the search found them */
  carried: Trial | null;
  late: Trial | null;
  /** throughput(N) / (N × throughput(1)), the throughput of an on-time configuration being its demand: pks per interval */
  efficiency: number | null;
  trials: Array<{ pks: number; onTimePct: number }>;
  stoppedBecause: string;
}

export interface MachinesResult {
  quotas: { node: number; redis: number; redisMasters: number; store: number; periodMs: number };
  intervalMs: number;
  k: number;
  precision: number;
  steps: MachinesStep[];
  /** the highest mock CPU and probe latency over every measured trial, and what that says */
  mock: { maxCpuPct: number; maxProbeP99Ms: number | null; verdict: string };
}

/** The mock's CPU, of the one core its thread can use, up to which it is surely not what limits a trial. */
const MOCK_MAX_PCT = 60;

export async function scaleOutOnMachines(
  infra: Infra,
  o: MachinesOptions,
  progress: (line: string) => void,
): Promise<MachinesResult> {
  // no quotas, no scenario: the figures would be the shared box's, which scenario 2 already gives
  const unsupported = quotaSupport();
  if (unsupported) throw new Error(`cannot run without CPU quotas: ${unsupported}`);
  const machines = new Machines();
  const redis = await redisSide(infra, o.redisMasters);
  try {
    for (const s of redis.servers) machines.place(s.name, o.redisCores, s.pid);
    machines.place('ferretdb', o.storeCores, infra.ferret.child.pid!);
    machines.place('mock', null, infra.mock.child.pid!);
    const servers = [...redis.servers.map((s) => s.name), 'ferretdb', 'mock'];
    const trialInfra: Infra = { ...infra, redisClient: redis.client };
    const settings: TrialSettings = { ...o, env: redis.env };
    const steps: MachinesStep[] = [];
    for (const n of o.nodeCounts) {
      const one = steps[0]?.carried;
      const guess = one ? n * one.pks : n * o.firstPks;
      const run = (pks: number) => machineTrial(trialInfra, machines, servers, n, pks, settings);
      steps.push(await search(n, guess, run, o, progress));
    }
    const base = steps[0]?.carried;
    for (const s of steps) s.efficiency = base && s.carried ? round(s.carried.pks / (s.nodes * base.pks), 2) : null;
    return {
      quotas: {
        node: o.nodeCores,
        redis: o.redisCores,
        redisMasters: o.redisMasters,
        store: o.storeCores,
        periodMs: PERIOD_US / 1000,
      },
      intervalMs: o.intervalMs,
      k: o.k,
      precision: o.precision,
      steps,
      mock: mockVerdict(steps, o.concurrency),
    };
  } finally {
    removeMachines();
    await redis.stop();
  }
}

/** A trial's length: start and settle, warm-up, K intervals (and K more if measured again) and the last card read, the stop. */
const trialMs = (o: MachinesOptions): number => 10_000 + o.warmupMs + (2 * o.k + 1) * o.intervalMs + 6000;

/** Raises the pks from `guess` until the smallest late count is within the precision of the largest on time. */
async function search(
  nodes: number,
  guess: number,
  run: (pks: number) => Promise<Trial>,
  o: MachinesOptions,
  progress: (line: string) => void,
): Promise<MachinesStep> {
  const trials: Trial[] = [];
  let pks = roundPks(guess);
  let stoppedBecause = `${o.maxTrials} trials done`;
  while (trials.length < o.maxTrials) {
    if (Date.now() + trialMs(o) > o.deadline) {
      stoppedBecause = 'time budget';
      break;
    }
    const t = await run(pks);
    trials.push(t);
    progress(
      `  ${nodes} node(s), ${pks} pks: ${t.samplesPerSec} samples/s of ${t.demandPerSec}, on time ${t.onTimePct}%, busiest ${t.busiest.name} ${t.busiest.loadPct}%`,
    );
    const next = nextPks(trials, o.precision, o.intervalMs);
    if (next === null) {
      stoppedBecause = `bracketed within ${round(o.precision * 100)} %`;
      break;
    }
    pks = next;
  }
  const { lo, hi } = bracket(trials);
  return {
    nodes,
    carried: lo ?? null,
    late: hi ?? null,
    efficiency: null,
    trials: trials.map((t) => ({ pks: t.pks, onTimePct: t.onTimePct })),
    stoppedBecause,
  };
}

/** The largest count on time and the smallest late one. */
function bracket(trials: Trial[]): { lo?: Trial; hi?: Trial } {
  const lo = trials.filter((t) => t.onTime).sort((a, b) => b.pks - a.pks)[0];
  const hi = trials.filter((t) => !t.onTime).sort((a, b) => a.pks - b.pks)[0];
  return { lo, hi };
}

/** How much more the search asks while nothing was late. */
const GROWTH = 1.4;

/**
 * The next count to try, or null when the bracket is narrow enough: while nothing was late, 1.4×
 * the largest on time (a node's CPU under its quota grows less than its load, bigger batches and
 * work done in bursts after a throttle, so its % of quota does not say where it stops); while
 * nothing was on time, 95 % of what the late one stored; then the middle of the bracket.
 */
function nextPks(trials: Trial[], precision: number, intervalMs: number): number | null {
  const { lo, hi } = bracket(trials);
  let next: number;
  if (lo && hi) {
    if (hi.pks <= lo.pks * (1 + precision)) return null;
    next = (lo.pks + hi.pks) / 2;
  } else if (lo) {
    next = lo.pks * GROWTH;
  } else {
    next = Math.min(hi!.pks / (1 + precision), (0.95 * hi!.samplesPerSec * intervalMs) / 1000);
  }
  const pks = roundPks(next);
  return trials.some((t) => t.pks === pks) ? null : pks;
}

const roundPks = (x: number): number => Math.max(100, Math.round(x / 100) * 100);

/**
 * Whether the mock could have limited a trial: by its CPU (it has no quota, one thread), or by its
 * answer time, as a node with C requests in flight makes at most C / (mean answer time) a second.
 */
function mockVerdict(steps: MachinesStep[], concurrency: number): MachinesResult['mock'] {
  const measured = steps.flatMap((s) => [s.carried, s.late]).filter((t): t is Trial => t !== null);
  const mockPct = (t: Trial): number => t.machines.find((m) => m.name === 'mock')?.cpuPct ?? 0;
  // how many times what each node asked of it the mock's answer time would have allowed
  const room = (t: Trial): number =>
    t.mockProbe.meanMs ? concurrency / (t.mockProbe.meanMs / 1000) / (t.samplesPerSec / t.nodes) : 0;
  const maxCpuPct = Math.max(0, ...measured.map(mockPct));
  const p99s = measured.map((t) => t.mockProbe.p99Ms).filter((x): x is number => x !== null);
  const maxProbeP99Ms = p99s.length ? Math.max(...p99s) : null;
  const minRoom = measured.length ? round(Math.min(...measured.map(room)), 1) : 0;
  const fine = maxCpuPct <= MOCK_MAX_PCT && minRoom >= 2;
  const figures = `at most ${maxCpuPct}% of the one core its thread can use (it has no quota), answers p99 ${maxProbeP99Ms ?? '–'} ms at worst from a probe outside every quota, so ${concurrency} requests in flight would carry at least ${minRoom}× what each node asked of it (C / mean answer time), in every reported trial`;
  return {
    maxCpuPct,
    maxProbeP99Ms,
    verdict: fine
      ? `the mock was not the limit: ${figures}`
      : `the mock may have been a limit (over ${MOCK_MAX_PCT} % of its core, or under 2× room): ${figures}`,
  };
}

/** The Redis the nodes use: the run's redis-server, or a Redis Cluster started for the scenario. */
async function redisSide(infra: Infra, masters: number) {
  if (masters === 1)
    return {
      servers: [{ name: 'redis', pid: infra.redis.child.pid! }],
      client: infra.redisClient,
      env: {} as Record<string, string>,
      stop: async () => undefined,
    };
  const rc = await startRedisCluster(masters);
  const client = createRedis({ clusterNodes: rc.nodes.split(',') }, createLogger('silent'), 'bench', {
    maxRetriesPerRequest: 2,
  });
  client.on('error', () => undefined);
  await client.connect();
  return {
    servers: rc.masters.map((m) => ({ name: m.name, pid: m.child.pid! })),
    client,
    env: { REDIS_URL: rc.masters[0]!.url, REDIS_CLUSTER_NODES: rc.nodes },
    stop: async () => {
      client.disconnect();
      await Promise.all(rc.masters.map((m) => stopChild(m.child, 'SIGKILL')));
    },
  };
}
