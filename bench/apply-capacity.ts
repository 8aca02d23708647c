// The Redis side's capacity: how many samples a second one Redis, or a Redis Cluster of M masters,
// absorbs through the apply step when the nodes send more than it can take, each master held to the
// same CPU quota (a cgroup v1 "machine") so the figure is not the box's limit. Batches of 1,000
// one-minute samples, one call per layout slice, as a node sends them (lib/storage/state/totals.ts),
// from this process with enough calls in flight to keep every master busy.
// Scenario 12 (`npm run bench -- --only 12 [--redis-masters M] [--redis-cores C]`): one master and M,
// alternately, `rounds` times each (an odd count, so the median is a run).
import { createLogger } from '../lib/shared/log.js';
import { SLICE_MARKS, sliceKeys } from '../lib/shared/keys.js';
import { createRedis, type RedisClient } from '../lib/shared/redis.js';
import { sliceCount } from '../lib/storage/format/layout.js';
import { Totals } from '../lib/storage/state/totals.js';
import { CpuMachine, quotaSupport } from './cgroup.js';
import { median } from './cluster.js';
import { cpuBetween, round, snapshot } from './proc.js';
import { startRedis, startRedisCluster, type Service } from './services.js';
import { stopChild } from '../test/kit/children.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const BATCH = 1000;
/**
 * Batches in flight at once, per master: each is a call per slice and waits for its slowest, so
 * with 8 for 3 masters they sat at 72-76 % of their quota in one round; more keeps each one busy.
 */
const WORKERS_PER_MASTER = 8;

export interface CapacityOptions {
  /** the Redis Cluster compared with one master */
  masters: number;
  /** each master's CPU quota in cores */
  cores: number;
  pks: number;
  seconds: number;
  rounds: number;
}

export interface CapacityRound {
  round: number;
  masters: number;
  samplesPerSec: number;
  /** each master's CPU over the window, % of its quota */
  quotaPct: number[];
  /** the masters' CPU per sample, added up */
  usPerSample: number;
  /** this process's CPU over the window, % of one core: it must not be the limit */
  generatorPct: number;
  /** the whole machine over the window, other work included (100 = every core) */
  machineBusyPct: number;
}

export interface CapacityResult {
  options: CapacityOptions;
  slices: number;
  rounds: CapacityRound[];
  /** per configuration, the median round's samples/s */
  medians: { masters: number; samplesPerSec: number }[];
  /** the cluster's median over one master's */
  ratio: number | null;
}

/** One master, then the cluster, `rounds` times: the samples/s each absorbs at saturation under the same quota per master. */
export async function applyCapacity(o: CapacityOptions, progress: (line: string) => void): Promise<CapacityResult> {
  const unsupported = quotaSupport();
  if (unsupported) throw new Error(`cannot run without CPU quotas: ${unsupported}`);
  const configs = [1, o.masters];
  const rounds: CapacityRound[] = [];
  for (let r = 1; r <= o.rounds; r++)
    for (const masters of configs) {
      const x = { round: r, ...(await once(masters, o.cores, o.pks, o.seconds)) };
      progress(
        `  round ${r}, ${masters} master(s): ${Math.round(x.samplesPerSec)} samples/s, masters ${x.quotaPct.map((p) => round(p)).join('/')} % of their quota, machine ${x.machineBusyPct} % busy`,
      );
      rounds.push(x);
    }
  const medians = configs.map((masters) => ({
    masters,
    samplesPerSec: round(median(rounds.filter((x) => x.masters === masters).map((x) => x.samplesPerSec))!),
  }));
  const [one, many] = medians;
  return {
    options: o,
    slices: sliceCount(o.pks),
    rounds,
    medians,
    ratio: one && many && one.samplesPerSec > 0 ? round(many.samplesPerSec / one.samplesPerSec, 2) : null,
  };
}

/** One configuration: its Redis started, preloaded without quotas, then saturated under them. */
async function once(
  masters: number,
  cores: number,
  pks: number,
  seconds: number,
): Promise<Omit<CapacityRound, 'round'>> {
  let servers: Service[];
  let redis: RedisClient;
  if (masters === 1) {
    const s = await startRedis();
    servers = [s];
    redis = createRedis(s.url, createLogger('silent'), 'capacity');
  } else {
    const c = await startRedisCluster(masters);
    servers = c.masters;
    redis = createRedis({ clusterNodes: c.nodes.split(',') }, createLogger('silent'), 'capacity');
  }
  await redis.connect();
  const machines = servers.map((s, i) => {
    const m = new CpuMachine(`redis-${masters}-${i}`, null);
    m.add(s.child.pid!);
    return m;
  });
  try {
    const cluster = 'cap';
    const slices = sliceCount(pks);
    const totals = new Totals(redis, cluster, slices);
    for (let s = 0; s < slices; s++) await redis.hset(sliceKeys(cluster, slices, s).marks, SLICE_MARKS.since, '0');
    const period = Math.floor(Date.now() / HOUR) * HOUR;
    const feed = new Feed(totals, pks, period, WORKERS_PER_MASTER * masters);
    // the keyspace as a node finds it: every pk with totals and a few points in its open buffer
    await feed.until(() => feed.minute >= 3);
    for (const m of machines) m.limit(cores);
    // a few seconds under the quotas before the window
    const warm = Date.now() + 3000;
    await feed.until(() => Date.now() >= warm);
    const [s0, c0, g0, t0] = [feed.samples, machines.map((m) => m.read().usageNs), process.cpuUsage(), Date.now()];
    const box0 = snapshot(new Map());
    const end = t0 + seconds * 1000;
    await feed.until(() => Date.now() >= end);
    const elapsed = (Date.now() - t0) / 1000;
    const samples = feed.samples - s0;
    const used = machines.map((m, i) => (m.read().usageNs - c0[i]!) / 1e9);
    const g = process.cpuUsage(g0);
    const box = cpuBetween(box0, snapshot(new Map()));
    return {
      masters,
      samplesPerSec: samples / elapsed,
      quotaPct: used.map((u) => (u / elapsed / cores) * 100),
      usPerSample: (used.reduce((a, b) => a + b, 0) * 1e6) / samples,
      generatorPct: ((g.user + g.system) / 1e6 / elapsed) * 100,
      machineBusyPct: box.machineBusyPct,
    };
  } finally {
    for (const m of machines) m.remove();
    redis.disconnect();
    await Promise.all(servers.map((s) => stopChild(s.child, 'SIGKILL')));
  }
}

/** Batches of one-minute samples of every pk, minute after minute, `workers` loops at once. */
class Feed {
  samples = 0;
  minute = 0;
  private next = 0;

  constructor(
    private readonly totals: Totals,
    private readonly pks: number,
    private readonly period: number,
    private readonly workers: number,
  ) {}

  /** Applies batches until `done()` says so. */
  async until(done: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: this.workers }, async () => {
        while (!done()) await this.batch();
      }),
    );
  }

  private async batch(): Promise<void> {
    const m = this.minute;
    const first = this.next;
    this.next += BATCH;
    if (this.next >= this.pks) [this.next, this.minute] = [0, this.minute + 1];
    const samples = Array.from({ length: Math.min(BATCH, this.pks - first) }, (_, i) => {
      const pk = 1_000_000 + first + i;
      const at = this.period + (m % 60) * MINUTE;
      return { pk, at, followerCount: 100_000 + ((pk * 7919 + m * 104_729) % 50_000), followingCount: 300 + (m % 17) };
    });
    await Promise.all(
      [...this.totals.bySlice(samples)].map(([slice, list]) =>
        this.totals.applySlice(this.period, slice, list, 'live'),
      ),
    );
    this.samples += samples.length;
  }
}
