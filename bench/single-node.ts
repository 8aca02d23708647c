// Scenario 1: one node over a rising number of pks, a fresh node and cluster for each; stops
// rising when the node is no longer on time or its CPU saturates (or the run's time is up).
import { BenchCluster, type Infra } from './cluster.js';
import { nextBoundary, sleepUntil } from '../test/kit/wait.js';
import {
  bottleneck,
  cardFigure,
  checksPerSec,
  cpuColumns,
  maxOf,
  measureWindow,
  median,
  onTimePct,
  SATURATED_PCT,
  settleMs,
} from './measure.js';
import { cpuBetween, round } from './proc.js';

export interface SingleNodeOptions {
  intervalMs: number;
  /** pk counts to try, rising */
  counts: number[];
  /** intervals measured per count */
  k: number;
  /** how long the node runs owning its pks before the measured intervals start */
  warmupMs: number;
  ttlMs: number;
  concurrency: number;
  flushMaxAgeMs?: number;
  /** epoch ms by which the scenario must be done: a count that would end later is not started */
  deadline: number;
  cores: number;
  /** settings for the node, over the benchmark's defaults */
  env?: Record<string, string>;
}

export interface SingleNodeRow {
  pks: number;
  demandPerSec: number;
  samplesPerSec: number;
  /** worst measured interval: its samples stored shortly after it ended, over pks */
  onTimePct: number;
  /** worst card onTimePct: samples stored before their interval ended */
  storedInIntervalPct: number | null;
  latenessP50Ms: number | null;
  latenessP99Ms: number | null;
  missed: number;
  cpuUsPerSample: number | null;
  rssBytes: number;
  rssBytesPerPk: number | null;
  marginalBytesPerPk: number | null;
  batchMsMedian: number | null;
  writeQueueMax: number | null;
  cpu: ReturnType<typeof cpuColumns>;
  /** is_suspicious checks stored per second (0 when the check is off) */
  checksPerSec: number;
  bottleneck: string;
  /** what the node logged at warn or above */
  warnings: string[];
}

export interface SingleNodeResult {
  intervalMs: number;
  k: number;
  warmupMs: number;
  baselineRssBytes: number;
  /** CPU % of that node: timers, heartbeats, membership scans */
  idleCpuPct: number | null;
  rows: SingleNodeRow[];
  stoppedBecause: string;
}

const NODE = 'n1';

interface Baseline {
  rss: number;
  startMs: number;
  idleCpuPct: number | null;
}

/** RSS of a node owning a single pk after a few seconds of running: what a node costs before its pks. */
async function baseline(infra: Infra, o: SingleNodeOptions): Promise<Baseline> {
  const c = new BenchCluster(infra, {
    pks: 1,
    intervalMs: o.intervalMs,
    ttlMs: o.ttlMs,
    concurrency: o.concurrency,
    flushMaxAgeMs: o.flushMaxAgeMs,
  });
  try {
    const t0 = Date.now();
    c.spawn(NODE);
    await c.settled([NODE]);
    const startMs = Date.now() - t0;
    await sleepUntil(Date.now() + 300);
    const cpu0 = c.cpu();
    await sleepUntil(Date.now() + 1500);
    const idleCpuPct = cpuBetween(cpu0, c.cpu()).percent.get(NODE) ?? null;
    return { rss: c.rss(NODE), startMs, idleCpuPct };
  } finally {
    await c.close();
  }
}

export async function singleNode(
  infra: Infra,
  o: SingleNodeOptions,
  progress: (line: string) => void,
): Promise<SingleNodeResult> {
  const I = o.intervalMs;
  let base: Baseline | undefined;
  let spawnMs = 2000;
  const rows: SingleNodeRow[] = [];
  let stoppedBecause = 'every count done';
  for (const pks of o.counts) {
    // spawn so the node owns its pks about `warmupMs` before a boundary; measure K intervals from there
    let start = nextBoundary(Date.now() + spawnMs + o.warmupMs, I);
    // the baseline node runs while the first count waits for its slot, if it fits there
    if (!base && start - o.warmupMs - spawnMs - Date.now() > 4000) {
      base = await baseline(infra, o);
      spawnMs = base.startMs + 500;
    }
    // its end: the last card read, the stop, and the baseline node if it has not run yet
    const end = start + o.k * I + settleMs(o) + 1500 + (base ? 0 : 2500);
    if (end > o.deadline) {
      stoppedBecause = `time budget: ${pks} pks would end after the run's deadline`;
      break;
    }
    const c = new BenchCluster(infra, {
      pks,
      intervalMs: I,
      ttlMs: o.ttlMs,
      concurrency: o.concurrency,
      flushMaxAgeMs: o.flushMaxAgeMs,
      env: o.env,
    });
    try {
      await sleepUntil(start - o.warmupMs - spawnMs);
      c.spawn(NODE);
      await c.settled([NODE], 60_000);
      if (start - Date.now() < o.warmupMs / 2) start += I;
      progress(`  ${pks} pks: owned, measuring ${o.k} intervals from ${new Date(start).toISOString().slice(11, 19)}`);
      const w = await measureWindow(c, start, o.k);
      const rss = c.rss(NODE);
      const stored = w.stored.get(NODE) ?? 0;
      const cpuS = w.cpu.seconds.get(NODE);
      const onTime = onTimePct(w, pks);
      const p99 = cardFigure(w, 'latenessP99Ms', maxOf);
      const prev = rows[rows.length - 1];
      const cpu = cpuColumns(w.cpu, [NODE]);
      const fine = onTime >= 99.9 && (p99 ?? Infinity) < I;
      rows.push({
        pks,
        demandPerSec: round(pks / (I / 1000), 1),
        samplesPerSec: w.samplesPerSec,
        onTimePct: onTime,
        storedInIntervalPct: cardFigure(w, 'onTimePct', (xs) => Math.min(...xs)),
        latenessP50Ms: roundOrNull(cardFigure(w, 'latenessP50Ms', median)),
        latenessP99Ms: roundOrNull(p99),
        missed: w.intervals.reduce((sum, cards) => sum + Number(cards.get(NODE)?.stats.missedLastInterval ?? 0), 0),
        cpuUsPerSample: cpuS !== undefined && stored > 0 ? round((cpuS * 1e6) / stored, 1) : null,
        rssBytes: rss,
        rssBytesPerPk: null,
        marginalBytesPerPk: prev ? round((rss - prev.rssBytes) / (pks - prev.pks)) : null,
        batchMsMedian: median(w.batchMs),
        writeQueueMax: w.writeQueue.length ? Math.max(...w.writeQueue.filter(Number.isFinite)) : null,
        cpu,
        checksPerSec: checksPerSec(w),
        bottleneck: bottleneck(w.cpu, [NODE], fine),
        warnings: [],
      });
      progress(`  ${pks} pks: ${w.samplesPerSec} samples/s, on time ${onTime}%, node CPU ${cpu.node}%`);
      await c.stop([NODE], 5000);
      rows[rows.length - 1]!.warnings = c.warnings();
      if (!fine) {
        stoppedBecause = `${pks} pks not on time (${onTime}% of samples stored in time, p99 lateness ${roundOrNull(p99)} ms)`;
        break;
      }
      if (cpu.node >= SATURATED_PCT) {
        stoppedBecause = `node CPU saturated at ${pks} pks (${cpu.node}%)`;
        break;
      }
    } finally {
      await c.close();
    }
  }
  base ??= await baseline(infra, o);
  for (const r of rows) r.rssBytesPerPk = base.rss > 0 ? round((r.rssBytes - base.rss) / r.pks) : null;
  return {
    intervalMs: I,
    k: o.k,
    warmupMs: o.warmupMs,
    baselineRssBytes: base.rss,
    idleCpuPct: base.idleCpuPct,
    rows,
    stoppedBecause,
  };
}

function roundOrNull(x: number | null): number | null {
  return x === null ? null : round(x);
}
