// The Redis side's capacity: how many samples a second one Redis, or a Redis Cluster of M masters,
// absorbs through the apply step when the nodes send more than it can take, each master held to the
// same CPU quota (a cgroup v1 "machine") so the figure is not the box's limit. Batches of 1,000
// one-minute samples, one call per layout slice, as a node sends them (lib/storage/state/totals.ts),
// from this process with enough calls in flight to keep every master busy. Configurations run in
// turn, `--rounds` times each.
// `node dist/bench/apply-capacity.js [--masters 1,3] [--redis-cores 0.25] [--pks N] [--seconds S] [--rounds R]`
import { parseArgs } from 'node:util';
import { createLogger } from '../lib/shared/log.js';
import { SLICE_MARKS, sliceKeys } from '../lib/shared/keys.js';
import { createRedis, type RedisClient } from '../lib/shared/redis.js';
import { sliceCount } from '../lib/storage/format/layout.js';
import { Totals } from '../lib/storage/state/totals.js';
import { CpuMachine, quotaSupport, removeMachines } from './cgroup.js';
import { median } from './cluster.js';
import { round } from './proc.js';
import { startRedis, startRedisCluster, type Service } from './services.js';
import { killAll } from '../test/kit/children.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const BATCH = 1000;
/** batches in flight at once: each is a call per slice, so hundreds of calls keep every master busy */
const WORKERS = 8;

interface Round {
  masters: number;
  samplesPerSec: number;
  /** each master's CPU over the window, % of its quota, and µs per sample it took */
  quotaPct: number[];
  usPerSample: number;
  /** this process's CPU over the window, % of one core: it must not be the limit */
  generatorPct: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      masters: { type: 'string', default: '1,3' },
      'redis-cores': { type: 'string', default: '0.25' },
      pks: { type: 'string', default: '1000000' },
      seconds: { type: 'string', default: '20' },
      rounds: { type: 'string', default: '2' },
    },
  });
  const configs = values.masters.split(',').map(Number);
  const cores = Number(values['redis-cores']);
  const [pks, seconds, rounds] = [Number(values.pks), Number(values.seconds), Number(values.rounds)];
  if (configs.some((m) => !Number.isInteger(m) || m < 1 || m > 8) || !(cores > 0 && cores <= 1))
    throw new Error('--masters: integers 1 to 8, comma-separated; --redis-cores: above 0, at most 1');
  if (!Number.isInteger(pks) || pks < BATCH || !(seconds >= 5) || !Number.isInteger(rounds) || rounds < 1)
    throw new Error(`--pks: an integer ≥ ${BATCH}; --seconds ≥ 5; --rounds ≥ 1`);
  const unsupported = quotaSupport();
  if (unsupported) throw new Error(`cannot run without CPU quotas: ${unsupported}`);
  const results: Round[] = [];
  for (let r = 0; r < rounds; r++)
    for (const masters of configs) results.push(await once(masters, cores, pks, seconds));
  const slices = sliceCount(pks);
  console.log(`${pks} pks in ${slices} slices, each master ${cores} core, ${seconds} s a round, ${rounds} round(s)`);
  console.log('masters  samples/s  masters % of quota  Redis µs/sample  generator % of a core');
  for (const r of results)
    console.log(
      `${String(r.masters).padStart(7)}  ${String(Math.round(r.samplesPerSec)).padStart(9)}  ${r.quotaPct
        .map((p) => round(p))
        .join('/')
        .padStart(18)}  ${String(round(r.usPerSample, 2)).padStart(15)}  ${String(round(r.generatorPct)).padStart(21)}`,
    );
  const perConfig = new Map(
    configs.map((m) => [m, median(results.filter((r) => r.masters === m).map((r) => r.samplesPerSec))!]),
  );
  const one = perConfig.get(1);
  for (const [m, perSec] of perConfig)
    console.log(
      `median ${m} master(s): ${Math.round(perSec)} samples/s${one ? `, ${round(perSec / one, 2)}× one master's` : ''}`,
    );
}

/** One configuration: its Redis started, preloaded without quotas, then saturated under them. */
async function once(masters: number, cores: number, pks: number, seconds: number): Promise<Round> {
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
    const feed = new Feed(totals, pks, period);
    // the keyspace as a node finds it: every pk with totals and a few points in its open buffer
    await feed.until(() => feed.minute >= 3);
    for (const m of machines) m.limit(cores);
    // a few seconds under the quotas before the window
    const warm = Date.now() + 3000;
    await feed.until(() => Date.now() >= warm);
    const [s0, c0, g0, t0] = [feed.samples, machines.map((m) => m.read().usageNs), process.cpuUsage(), Date.now()];
    const end = t0 + seconds * 1000;
    await feed.until(() => Date.now() >= end);
    const elapsed = (Date.now() - t0) / 1000;
    const samples = feed.samples - s0;
    const used = machines.map((m, i) => (m.read().usageNs - c0[i]!) / 1e9);
    const g = process.cpuUsage(g0);
    return {
      masters,
      samplesPerSec: samples / elapsed,
      quotaPct: used.map((u) => (u / elapsed / cores) * 100),
      usPerSample: (used.reduce((a, b) => a + b, 0) * 1e6) / samples,
      generatorPct: ((g.user + g.system) / 1e6 / elapsed) * 100,
    };
  } finally {
    for (const m of machines) m.remove();
    redis.disconnect();
    killAll();
  }
}

/** Batches of one-minute samples of every pk, minute after minute, applied by WORKERS loops at once. */
class Feed {
  samples = 0;
  minute = 0;
  private next = 0;

  constructor(
    private readonly totals: Totals,
    private readonly pks: number,
    private readonly period: number,
  ) {}

  /** Applies batches until `done()` says so. */
  async until(done: () => boolean): Promise<void> {
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
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

main()
  .catch((err: Error) => {
    console.error(err.message);
    process.exitCode = 1;
  })
  .finally(() => {
    removeMachines();
    killAll();
  });
