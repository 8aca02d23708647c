// Each scenario's result as readable tables (the same ones go to stdout and bench/results/RUNS.md).
import type { CapacityResult } from './apply-capacity.js';
import type { MockBenchResult } from './mock.js';
import type { ReadSideResult } from './read-side.js';
import type { FailoverResult } from './failover.js';
import type { ProfileResult } from './profile.js';
import { round } from './proc.js';
import type { Cell, Table } from './report.js';
import type { ScaleOutResult } from './scale-out.js';
import type { SingleNodeResult } from './single-node.js';
import type { StorageResult, StorageRow } from './storage.js';
import type { MachinesResult } from './machines.js';
import type { MachineUse, Trial } from './machine-trial.js';
import { BUDGET_US, type MissionResult } from './mission.js';
import type { SuspiciousImpactResult } from './suspicious.js';

const MB = 2 ** 20;
const s = (ms: number) => `${round(ms / 1000, 1)} s`;

/** `scale`: 60 s / interval, when time is compressed. */
export function singleNodeTables(r: SingleNodeResult, scale: number): Table[] {
  const compressed = scale > 1;
  const pkCell = (pks: number): string =>
    compressed ? `${pks.toLocaleString('en-US')} (≙${round((pks * scale) / 1000)}k)` : pks.toLocaleString('en-US');
  const timing: Table = {
    title: `1. Single node, rising pks: interval ${s(r.intervalMs)}, ${r.k} intervals measured after ${s(r.warmupMs)} of warm-up`,
    columns: [
      'pks',
      'demand/s',
      'samples/s',
      'on time %',
      'card on time %',
      'late p50 ms',
      'late p99 ms',
      'missed',
      'bottleneck',
    ],
    rows: r.rows.map((x) => [
      pkCell(x.pks),
      x.demandPerSec,
      x.samplesPerSec,
      x.onTimePct,
      x.storedInIntervalPct,
      x.latenessP50Ms,
      x.latenessP99Ms,
      x.missed,
      x.bottleneck,
    ]),
    notes: [
      ...(compressed
        ? [
            `time compressed ${scale}×: ${s(r.intervalMs)} intervals, so N pks here make the samples/s of ${scale}·N pks at 60 s (≙ column)`,
          ]
        : []),
      "on time %: worst measured interval, its samples stored within about a flush age after it ended, over pks; card on time %: the node's own onTimePct (stored before the pk was due again)",
      "late p50/p99: the card's figures, from a uniform sample of up to 10,000 samples of the interval",
      `stopped: ${r.stoppedBecause}`,
      ...r.rows.filter((x) => x.warnings.length).map((x) => `node warnings at ${x.pks} pks: ${x.warnings.join('; ')}`),
    ],
  };
  const cost: Table = {
    title: '1. Single node: cost',
    columns: [
      'pks',
      'µs CPU/sample',
      'RSS MB',
      'B/pk',
      'marginal B/pk',
      'batch ms',
      'queue max',
      'CPU% node',
      'mock',
      'redis',
      'ferretdb',
      'machine',
    ],
    rows: r.rows.map((x) => [
      pkCell(x.pks),
      x.cpuUsPerSample,
      round(x.rssBytes / MB, 1),
      x.rssBytesPerPk,
      x.marginalBytesPerPk,
      x.batchMsMedian,
      x.writeQueueMax,
      x.cpu.node,
      x.cpu.mock,
      x.cpu.redis,
      x.cpu.ferretdb,
      x.cpu.machine,
    ]),
    notes: [
      `B/pk: (RSS − ${round(r.baselineRssBytes / MB, 1)} MB of a node owning 1 pk) / pks; marginal: RSS growth over the previous row / added pks`,
      `a node owning 1 pk uses ${r.idleCpuPct ?? '–'}% of a core (timers, heartbeats every TTL/3, member scans): part of µs CPU/sample at low rates`,
      'CPU% is of one core; machine is the whole machine (other processes included), 100 % = every core busy',
    ],
  };
  return [timing, cost];
}

export function scaleOutTables(r: ScaleOutResult): Table[] {
  return [
    {
      title: `2. Scale-out: ${r.pks} pks every ${s(r.intervalMs)}, ${r.k} interval(s) measured per step, from ≥ ${s(r.warmupMs)} after the ring settled (${s(r.firstWarmupMs)} for the first node); nodes join one cluster`,
      columns: [
        'nodes',
        'demand/s',
        'samples/s',
        'met %',
        'on time %',
        'balance',
        'speed-up',
        'per node vs 1',
        'µs CPU/sample',
        'CPU% nodes',
        'max node',
        'mock',
        'redis',
        'ferretdb',
        'machine',
        'bottleneck',
      ],
      rows: r.rows.map((x) => [
        x.nodes,
        x.demandPerSec,
        x.samplesPerSec,
        x.metPct,
        x.onTimePct,
        x.balance,
        x.speedup,
        x.perNodeVsOne,
        x.cpuUsPerSample,
        x.cpu.node,
        x.cpu.nodeMax,
        x.cpu.mock,
        x.cpu.redis,
        x.cpu.ferretdb,
        x.cpu.machine,
        x.bottleneck,
      ]),
      notes: [
        "balance: max / mean owned pks; speed-up: samples/s over one node's; per node vs 1: samples/s per node over one node's",
        r.note,
        ...(r.warnings.length ? [`node warnings: ${r.warnings.join('; ')}`] : []),
      ],
    },
  ];
}

export function ringTables(r: RingResult): Table[] {
  const joins: Table = {
    title: '3. Rebalancing: join of node n+1 (1,000,000 pks)',
    columns: ['n', 'moved pks', 'moved / (1/(n+1))', '≤ 1.15', 'all to the joiner'],
    rows: r.joinMoveRatio.map((j) => [j.n, j.moved, j.ratio, j.ratio <= 1.15, j.onlyToJoiner]),
  };
  const leaves: Table = {
    title: '3. Rebalancing: leave of one of n nodes',
    columns: ['n', 'leaver', "leaver's pks", 'moved pks', "only the leaver's moved"],
    rows: r.leave.map((l) => [l.n, l.leaver, l.leaverPks, l.moved, l.onlyLeaversPks]),
  };
  const recompute: Table = {
    title: '3. Rebalancing: ownership recompute for 1,000,000 pks (median of 7, ms; goal ≤ 100)',
    columns: ['members', 'vnode points', 'digests', 'ring build', 'sweep', 'ownedBy', 'diff', 'total'],
    rows: r.recompute.flatMap((x) =>
      (['warm', 'cold'] as const).map((mode) => [
        x.members,
        x.points,
        mode,
        x[mode].buildMs,
        x[mode].sweepMs,
        x[mode].ownedByMs,
        x[mode].diffMs,
        x[mode].totalMs,
      ]),
    ),
    notes: [
      `share spread over n = 2..32 members: worst ${r.shareSpread.worstMin}–${r.shareSpread.worstMax} of a fair share (within ±10 %: ${r.shareSpread.withinTenPercent ? 'yes' : 'no'})`,
      `pk universe: hashing 1,000,000 pks ${r.universe.hashMs.cryptoHash} ms (crypto.hash; createHash ${r.universe.hashMs.createHash} ms), sort ${r.universe.sortMs} ms, ${r.universe.bytesPerPk} B/pk`,
      "warm: the old members' vnode digests are memoised from the previous ring (a running node); cold: every id new",
    ],
  };
  return [joins, leaves, recompute];
}

export function failoverTables(r: FailoverResult): Table[] {
  return [
    {
      title: `4. Failover: 3 nodes, ${r.pks} pks every ${s(r.intervalMs)}, HEARTBEAT_TTL_MS ${r.ttlMs}, SIGKILL of one mid-interval`,
      columns: ['figure', 'value', 'goal'],
      rows: [
        ["killed node's pks", r.killedPks, null],
        ['takeover: kill → survivors own every pk', `${r.takeoverMs} ms`, `≤ ${r.takeoverGoalMs} ms (TTL + 2 s)`],
        ['missed intervals per affected pk, max', r.missedMax, '≤ 1'],
        ['missed intervals per killed pk, mean', r.missedMean, null],
        ['pks that missed an interval', r.affectedPks, null],
        ['missed intervals of the other pks', r.otherPksMissed, '0'],
        ["survivors' exit codes (graceful stop)", r.survivorsExitCodes.join(', '), '0, 0'],
        ['graceful stop of the survivors', `${r.stopMs} ms`, null],
      ],
      notes: [
        `window: ${r.window.intervals} whole intervals from ${r.window.from} (first full interval with all 3 active) to ${r.window.to} (last full interval before the stop), read back from the timeline collection`,
        ...(r.warnings.length ? [`node warnings: ${r.warnings.join('; ')}`] : []),
      ],
    },
  ];
}

export interface MockOutcome extends MockBenchResult {
  seconds: number;
  connections: number;
  clientCpuPercent: number;
}

export function mockTables(r: MockOutcome, cores: number): Table[] {
  const usPerReq = r.requestsPerSec > 0 ? round((r.mockCpuPercent * 10_000) / r.requestsPerSec, 1) : null;
  const ceiling = usPerReq ? round(1e6 / usPerReq) : null;
  const bottleneck =
    r.mockCpuPercent >= 90
      ? `mock (${r.mockCpuPercent}% of a core)`
      : r.clientCpuPercent >= 90
        ? `load generator: autocannon in the bench process (${r.clientCpuPercent}%)`
        : `none saturated on ${cores} cores (client ${r.clientCpuPercent}%, mock ${r.mockCpuPercent}%)`;
  return [
    {
      title: `5. The mock alone: autocannon, ${r.connections} connections, ${r.seconds} s, random pks (goal ≥ 20,000 req/s on one core)`,
      columns: [
        'req/s',
        'p50 ms',
        'p99 ms',
        'mock CPU %',
        'mock µs CPU/req',
        'one-core ceiling req/s',
        'client CPU %',
        'bottleneck',
      ],
      rows: [[r.requestsPerSec, r.p50Ms, r.p99Ms, r.mockCpuPercent, usPerReq, ceiling, r.clientCpuPercent, bottleneck]],
      notes: [
        "one-core ceiling: 1 s / the mock's CPU per request, what it would serve with a core to itself and a faster client",
      ],
    },
  ];
}

/** `fullPks`: the tracked pks of the full run, when this one used fewer. */
export function readSideTables(r: ReadSideResult, fullPks: number): Table[] {
  const pks = r.pks.toLocaleString('en-US');
  const fewer = r.pks < fullPks ? ` (quick: ${pks} tracked pks, not ${fullPks.toLocaleString('en-US')})` : '';
  const routes: Table = {
    title: `6. Read side: influencer-node serve over ${pks} tracked pks${fewer}, autocannon ${r.seconds} s per route (the timeline: a number of requests)`,
    columns: [
      'route',
      'connections',
      'requests',
      'seconds',
      'req/s',
      'p50 ms',
      'p99 ms',
      'paced: req/s, p50, p99 ms',
      'errors',
      'non-2xx',
      'CPU% serve',
      'serve µs CPU/req',
      'serve one-core req/s',
      'redis',
      'ferretdb',
      'autocannon',
      'machine',
      'bottleneck',
    ],
    rows: r.routes.map((x) => [
      x.route,
      x.connections,
      x.requests,
      x.seconds,
      x.requestsPerSec,
      x.p50Ms,
      x.p99Ms,
      x.paced ? `${x.paced.requestsPerSec}: ${x.paced.p50Ms}, ${x.paced.p99Ms}` : null,
      x.errors,
      x.non2xx,
      x.cpu.serve,
      x.serveCpuUsPerRequest,
      x.serveCpuUsPerRequest ? round(1e6 / x.serveCpuUsPerRequest) : null,
      x.cpu.redis,
      x.cpu.ferretdb,
      x.cpu.autocannon,
      x.cpu.machine,
      x.bottleneck,
    ]),
    notes: [
      `requests: ${r.routes.map((x) => `${x.route} ${x.path}`).join('; ')}; the page takes random tracked pks, the timeline the ${r.seed.timelinePks} pks with points (T: the end of their day)`,
      "influencer page: three HGETs of its slice (figures, username, suspicious flag) in one round trip, and a rank from the ranking snapshots serve holds (a binary search in each slice's); top lists: the slices' top lists merged, an HMGET of usernames per slice, read at most once a second and shared; stats: the snapshots' counts and sums; the snapshots and the slices' totals state are read again at most once a second, shared by every request; timeline: one _id range of MongoDB",
      `timeline: FerretDB 1.24 does not push an _id range down to SQLite (nor use its _id index), so every request reads the whole timeline collection: ${r.seed.timelinePoints.toLocaleString('en-US')} points here, where nodes tracking 1M pks store 1.44 billion a day; on MongoDB it is an index range`,
      "serve one-core req/s: 1 s / serve's CPU per request, what it would answer with a core to itself (Redis and FerretDB apart); CPU at 100 clock ticks a second: rough for a few requests",
      'CPU% is of one core; autocannon runs in the bench process; machine is the whole machine (other processes included), 100 % = every core busy',
      `req/s, p50 and p99: as many requests as the connections get answered (saturated: the p99 is mostly the wait in serve's queue); paced: the same route again at a steady ${r.routes.find((x) => x.paced)?.paced?.rate ?? '–'} requests a second, what a reader waits at a load serve keeps up with`,
    ],
  };
  const seed: Table = {
    title: '6. Read side: seeded state',
    columns: ['what', 'how', 'count', 'seconds', 'Redis MB'],
    rows: [
      [
        'totals, rank, growth, suspicious flag',
        'the Lua script of the write path, two samples per pk; Totals.setSuspicious',
        r.pks,
        r.seed.redisS,
        round(r.seed.redisBytes / MB, 1),
      ],
      [
        'one-minute points, a day per pk',
        'BatchWriter (points, totals, influencer documents)',
        `${r.seed.timelinePks} pks, ${r.seed.timelinePoints.toLocaleString('en-US')} points`,
        r.seed.timelineS,
        null,
      ],
      ['total', '', null, r.seed.totalS, null],
    ],
    notes: [
      `Redis: ${round(r.seed.redisBytes / r.pks)} B per tracked pk; no other influencer documents in MongoDB: no route reads them`,
    ],
  };
  return [routes, seed];
}

/** The shape benchRing() returns (bench/ring.ts). */
export interface RingResult {
  universe: { pks: number; hashMs: { cryptoHash: number; createHash: number }; sortMs: number; bytesPerPk: number };
  recompute: Array<
    { members: number; points: number } & Record<
      'warm' | 'cold',
      { buildMs: number; sweepMs: number; ownedByMs: number; diffMs: number; totalMs: number }
    >
  >;
  shareSpread: { worstMin: number; worstMax: number; withinTenPercent: boolean };
  joinMoveRatio: Array<{ n: number; moved: number; ratio: number; onlyToJoiner: boolean }>;
  leave: Array<{ n: number; leaver: string; leaverPks: number; moved: number; onlyLeaversPks: boolean }>;
}

export function profileTables(r: ProfileResult): Table[] {
  const entries = (title: string, xs: ProfileResult['byFunction']): Table => ({
    title,
    columns: ['', 'self ms', '% of busy'],
    rows: xs.map((x) => [x.name, x.selfMs, x.pct]),
  });
  return [
    {
      title: `8. Profile: one node, ${r.pks.toLocaleString('en-US')} pks every ${s(r.intervalMs)}, ${r.k} intervals measured under \`node --cpu-prof\``,
      columns: [
        'samples/s',
        'on time %',
        'µs CPU/sample',
        'CPU% node',
        'mock',
        'redis',
        'ferretdb',
        'machine',
        'profiled',
      ],
      rows: [
        [
          r.samplesPerSec,
          r.onTimePct,
          r.cpuUsPerSample,
          r.cpu.node,
          r.cpu.mock,
          r.cpu.redis,
          r.cpu.ferretdb,
          r.cpu.machine,
          s(r.profileMs),
        ],
      ],
      notes: [
        `profile: \`${r.file}\` (start to exit, warm-up included; open in Chrome DevTools); µs CPU/sample includes the profiler's own overhead`,
      ],
    },
    entries('8. Profile: self time per package (busy time only)', r.byPackage),
    entries('8. Profile: self time per function, top 15', r.byFunction),
  ];
}

/** `scale`: 60 s / interval, when time is compressed. */
export function suspiciousTables(r: SuspiciousImpactResult, scale: number): Table[] {
  return [
    {
      title: `7. On time with and without the daily is_suspicious check: one node, ${r.pks.toLocaleString('en-US')} pks every ${s(r.intervalMs)}, ${r.k} intervals measured`,
      columns: [
        'is_suspicious',
        'period',
        'checks/s',
        'samples/s',
        'on time %',
        'card on time %',
        'late p50 ms',
        'late p99 ms',
        'missed',
        'µs CPU/sample',
        'CPU% node',
        'ferretdb',
        'bottleneck',
      ],
      rows: r.rows.map((x) => [
        x.variant,
        x.periodMs ? s(x.periodMs) : '–',
        x.checksPerSec,
        x.samplesPerSec,
        x.onTimePct,
        x.storedInIntervalPct,
        x.latenessP50Ms,
        x.latenessP99Ms,
        x.missed,
        x.cpuUsPerSample,
        x.cpu.node,
        x.cpu.ferretdb,
        x.bottleneck,
      ]),
      notes: [
        ...(scale > 1
          ? [
              `time compressed ${scale}×: ${r.pks.toLocaleString('en-US')} pks every ${s(r.intervalMs)} make the samples/s of ${round((r.pks * scale) / 1000)}k pks at 60 s, and the day is compressed as much (daily = ${s(86_400_000 / scale)})`,
            ]
          : []),
        `${r.concurrency}; the bench mock answers is_suspicious at once (the real one takes about a second), so each check costs the node an HTTP request, a Redis read and a MongoDB update back to back: the heaviest the check can be`,
        'saturated: a period so short the check never catches up, so it runs at its concurrency limit for the whole window',
      ],
    },
  ];
}

export function storageTables(r: StorageResult): Table[] {
  const rangeCells = (x: StorageRow): Cell[] =>
    ['hour', 'day', 'week', 'month'].flatMap((k) => [x.reads[k]?.p50Ms, x.reads[k]?.p99Ms]);
  return [
    {
      title: `9. Storage: ${r.days} days of one-minute points per pk (closed periods by the SliceWriter, the open one through the log and the Lua step)`,
      columns: [
        'pks',
        'samples',
        'fill s',
        'kept B/sample',
        'checkpoints B/sample',
        'file B/sample',
        'store µs/sample',
        'writer µs/sample',
        'hour p50',
        'hour p99',
        'day p50',
        'day p99',
        'week p50',
        'week p99',
        'month p50',
        'month p99',
        'finds h/d/w/m',
      ],
      rows: r.rows.map((x) => [
        x.pks,
        x.samples,
        x.fillS,
        x.keptBytesPerSample,
        x.checkpointBytesPerSample,
        x.fileBytesPerSample,
        x.storeCpuUsPerSample,
        x.writerCpuUsPerSample,
        ...rangeCells(x),
        ['hour', 'day', 'week', 'month'].map((k) => x.reads[k]?.finds).join('/'),
      ]),
      notes: [
        'kept: pages of the buckets_* and rollups_* collections and their _id indexes (FerretDB collStats: SQLite dbstat) over the samples; checkpoints: the newest and the 26 before it per slice, as retention keeps them; file: every FerretDB file',
        'store µs: FerretDB CPU while the closed periods were written; writer µs: the writing process (encoding, checkpoints)',
        "reads (ms): one random pk's last hour and day (one point per interval) and week and month (one point per hour), the open period included, as the API reads them; finds: MongoDB finds per read",
      ],
    },
    {
      title:
        '9. Storage: rebuild of the totals after Redis lost everything (a checkpoint per slice standing for 30 days, and the log after it)',
      columns: ['pks', 'logged samples after the checkpoint', 'rebuild s'],
      rows: r.rebuild.map((x) => [x.pks, x.logSamples, x.seconds]),
      notes: [`stopped: ${r.stoppedBecause}`],
    },
  ];
}

export function missionTables(r: MissionResult): Table[] {
  const u = r.usPerSample;
  const over = (v: number | null, budget: number): string =>
    v === null ? '–' : v <= budget ? 'within' : `${round(v / budget, 1)}× over`;
  return [
    {
      title: `10. The mission: ${r.pks.toLocaleString('en-US')} pks every ${s(r.intervalMs)} on ${r.nodes} node(s), ${r.k} intervals measured`,
      columns: [
        'demand/s',
        'samples/s',
        'on time %',
        'late p50 ms',
        'late p99 ms',
        'missed',
        'machine busy %',
        'bottleneck',
      ],
      rows: [
        [
          r.demandPerSec,
          r.samplesPerSec,
          r.onTimePct,
          r.latenessP50Ms,
          r.latenessP99Ms,
          r.missed,
          r.machineBusyPct,
          r.bottleneck,
        ],
      ],
      notes: [
        'on time %: worst measured interval, its samples stored within about a flush age after it ended, over pks; the goal is ≥ 99.9',
      ],
    },
    {
      title:
        '10. The mission: CPU per stored sample against the budget (2 cores are 120 µs a sample at 16,667 samples/s)',
      columns: ['process', 'µs/sample', 'budget µs', 'verdict', 'CPU %'],
      rows: [
        [
          'nodes',
          u.node,
          BUDGET_US.node,
          over(u.node, BUDGET_US.node),
          Object.entries(r.cpuPct)
            .filter(([k]) => /^m\d+$/.test(k))
            .map(([, v]) => v)
            .join(' + '),
        ],
        ['redis', u.redis, BUDGET_US.redis, over(u.redis, BUDGET_US.redis), r.cpuPct.redis],
        ['ferretdb', u.ferretdb, BUDGET_US.ferretdb, over(u.ferretdb, BUDGET_US.ferretdb), r.cpuPct.ferretdb],
        ['mock', u.mock, BUDGET_US.mock, over(u.mock, BUDGET_US.mock), r.cpuPct.mock],
        ['machine (every process, kernel included)', u.machine, 96, over(u.machine, 96), r.machineBusyPct],
      ],
      notes: [
        ...(Object.keys(r.env ?? {}).length
          ? [
              `node settings over the defaults: ${Object.entries(r.env)
                .map(([k, v]) => `${k}=${v}`)
                .join(' ')}`,
            ]
          : []),
        `garbage collection: ${r.gcUsPerSample ?? '–'} µs of the nodes' µs a sample (nodejs_gc_duration_seconds)`,
        `RSS: ${Object.entries(r.rssBytes)
          .map(([id, b]) => `${id} ${round(b / MB)} MB`)
          .join(', ')}`,
        'budget: the machine may stay below about 80 % busy, so 96 of the 120 µs a sample',
        `Redis by command (INFO commandstats, µs inside the command per stored sample, by Redis's wall clock, so on a busy machine it can exceed the CPU column; the rest of Redis's CPU is reading requests and writing replies): ${r.redisCommands.map((x) => `${x.command} ${x.usPerSample} (${x.calls.toLocaleString('en-US')} calls)`).join(', ')}`,
        ...(r.warnings.length ? [`node warnings: ${r.warnings.join('; ')}`] : []),
      ],
    },
  ];
}

export function machinesTables(r: MachinesResult): Table[] {
  const q = r.quotas;
  const perMinute = 60_000 / r.intervalMs;
  const redis = q.redisMasters === 1 ? 'one redis-server' : `a Redis Cluster of ${q.redisMasters} masters, each`;
  // every machine of a kind (the nodes, the Redis masters) summed per sample, or its busiest
  const kind = (t: Trial, name: string): MachineUse[] =>
    t.machines.filter((m) => (name === 'node' ? /^n\d+$/.test(m.name) : m.name.replace(/\d+$/, '') === name));
  const usSum = (t: Trial | null, name: string): number | null =>
    t
      ? round(
          kind(t, name).reduce((sum, m) => sum + (m.usPerSample ?? 0), 0),
          1,
        )
      : null;
  const top = (t: Trial | null, name: string, pick: (m: MachineUse) => number): number | null =>
    t && kind(t, name).length ? Math.max(...kind(t, name).map(pick)) : null;
  const load = (m: MachineUse) => m.loadPct;
  const throttled = (m: MachineUse) => m.throttledPct;
  return [
    {
      title: `11. Scale-out on machines: each node ${q.node} core, Redis ${redis} ${q.redis} core, FerretDB ${q.store} core, the mock no quota (CFS period ${q.periodMs} ms); ${s(r.intervalMs)} intervals, ${r.k} measured per trial`,
      columns: [
        'nodes',
        'pks carried',
        `≙ pks/min`,
        'demand/s',
        'stored/s',
        'efficiency',
        'µs/sample nodes',
        'redis',
        'ferretdb',
        'mock',
        'busiest (% of its quota)',
        'smallest late: pks, on time, limit',
        'trials (pks: on time %)',
      ],
      rows: r.steps.map((x) => [
        x.nodes,
        x.carried?.pks,
        x.carried ? x.carried.pks * perMinute : null,
        x.carried?.demandPerSec,
        x.carried?.samplesPerSec,
        x.efficiency,
        usSum(x.carried, 'node'),
        usSum(x.carried, 'redis'),
        usSum(x.carried, 'ferretdb'),
        usSum(x.carried, 'mock'),
        x.carried ? `${x.carried.busiest.name} ${x.carried.busiest.loadPct}%` : null,
        x.late ? `${x.late.pks}: ${x.late.onTimePct}%, ${x.late.limit}` : null,
        `${x.trials.map((t) => `${t.pks}: ${t.onTimePct}`).join(', ')} (${x.stoppedBecause})`,
      ]),
      notes: [
        `pks carried: the largest count the search found on time (≥ 99.9 % of every measured interval's samples stored within about a flush age of its end); the limit lies between it and the smallest late count, at most ${round(r.precision * 100)} % apart where the search bracketed it`,
        `≙ pks/min: time compressed ${perMinute}×, so N pks every ${s(r.intervalMs)} make the samples/s of ${perMinute}·N pks every minute`,
        "efficiency: pks carried over N × one node's (an on-time configuration's throughput is its demand); stored/s above demand/s: samples of the start-up's catch-up stored in the window too; µs/sample: CPU of each process's cgroup (cpuacct) over the window per stored sample, the nodes summed",
        `busiest: the process with the highest CPU against its quota (the mock against one core); limit: a machine at ≥ 90 % of its quota, and the box when it was ≥ 90 % busy (other work included: a quota is a ceiling, not a promise)`,
        r.mock.verdict,
        ...r.steps.flatMap((x) =>
          x.carried && !x.late
            ? [`${x.nodes} node(s): no count was late within the trials, so the limit is above the one carried`]
            : [],
        ),
        ...r.steps.flatMap((x) =>
          x.carried?.warnings.length ? [`node warnings at ${x.nodes} node(s): ${x.carried.warnings.join('; ')}`] : [],
        ),
      ],
    },
    {
      title: '11. Scale-out on machines: each machine at the carried load',
      columns: [
        'nodes',
        'node max % of quota',
        'throttled %',
        'redis % of quota',
        'throttled %',
        'ferretdb % of quota',
        'throttled %',
        'mock % of a core',
        'mock p50 ms',
        'mock p99 ms',
        'box busy %',
        'late p99 ms',
      ],
      rows: r.steps.map((x) => [
        x.nodes,
        top(x.carried, 'node', load),
        top(x.carried, 'node', throttled),
        top(x.carried, 'redis', load),
        top(x.carried, 'redis', throttled),
        top(x.carried, 'ferretdb', load),
        top(x.carried, 'ferretdb', throttled),
        top(x.carried, 'mock', load),
        x.carried?.mockProbe.p50Ms,
        x.carried?.mockProbe.p99Ms,
        x.carried?.machineBusyPct,
        x.carried && x.carried.latenessP99Ms !== null ? round(x.carried.latenessP99Ms) : null,
      ]),
      notes: [
        'throttled %: of the CFS periods in which the process ran, those that stopped it at its quota (cpu.stat); the Redis and node columns show the busiest of their kind',
        'mock p50/p99: a probe outside every quota, one request every 200 ms over the window; box busy %: the whole machine, other work included (100 % = every core)',
      ],
    },
  ];
}

export function capacityTables(r: CapacityResult): Table[] {
  const o = r.options;
  const one = r.medians.find((m) => m.masters === 1);
  return [
    {
      title: `12. Redis apply capacity: ${o.pks.toLocaleString('en-US')} pks in ${r.slices} slices, each master ${o.cores} core (a CPU quota), ${o.seconds} s a round, one master and ${o.masters} in turn`,
      columns: [
        'round',
        'masters',
        'samples/s',
        'masters % of quota',
        'Redis µs/sample',
        'generator % of a core',
        'machine busy %',
      ],
      rows: r.rounds.map((x) => [
        x.round,
        x.masters,
        Math.round(x.samplesPerSec),
        x.quotaPct.map((p) => round(p)).join(' / '),
        round(x.usPerSample, 2),
        round(x.generatorPct),
        x.machineBusyPct,
      ]),
      notes: [
        ...r.medians.map(
          (m) =>
            `median of ${o.rounds} round(s), ${m.masters} master(s): ${m.samplesPerSec.toLocaleString('en-US')} samples/s${one && m.masters !== 1 && r.ratio !== null ? `, ${r.ratio}× one master's` : ''}`,
        ),
        'samples/s: one-minute samples the masters absorbed through the apply step (batches of 1,000 pks, one call per slice, as a node sends them) while the generator kept them saturated; masters % of quota near 100 shows Redis, not the generator (% of a core, unlimited), was the limit',
        "Redis µs/sample: the masters' CPU (cpuacct) over the window, added up, per sample; machine busy: the whole box, other work included (a quota is a ceiling, not a promise: masters under their quota while the box is near 100 % were starved by it)",
      ],
    },
  ];
}
