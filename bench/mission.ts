// Scenario 10: the whole mission on this machine: N pks every interval (1,000,000 every minute in
// the full run; 166,667 every 10 s, the same samples/s, in the quick one) with the bundled mock,
// Redis, the embedded FerretDB and 1 or 2 nodes, measured over K whole intervals after a warm-up:
// samples/s, on time, lateness, each process's CPU per stored sample against its budget, RSS.
import { BenchCluster, redisTotal, type Infra } from './cluster.js';
import { nextBoundary, sleepUntil } from '../test/kit/wait.js';
import { bottleneck, cardFigure, commandStats, maxOf, measureWindow, median, onTimePct, settleMs } from './measure.js';
import { freePort } from '../lib/ops/ports.js';
import { round } from './proc.js';
import type { SingleNodeOptions } from './single-node.js';

/** A single-node run's timing settings, for N pks on `nodes` nodes. */
export interface MissionOptions extends Pick<
  SingleNodeOptions,
  'intervalMs' | 'k' | 'warmupMs' | 'ttlMs' | 'concurrency' | 'flushMaxAgeMs' | 'deadline' | 'cores'
> {
  pks: number;
  /** nodes sharing the pks */
  nodes: number;
  /** settings for every node over the defaults (`--node-env`): what a change is measured with */
  env?: Record<string, string>;
}

/** CPU µs per stored sample each part of the machine may spend at 16,667 samples/s (DESIGN.md). */
// the design's budgets a stored sample (node 45, Redis 10, store 10, mock 25 µs): 90 of the 120 µs two cores have at 16,667/s
export const BUDGET_US = { node: 45, redis: 10, ferretdb: 10, mock: 25 } as const;

export interface MissionResult {
  pks: number;
  intervalMs: number;
  nodes: number;
  k: number;
  demandPerSec: number;
  samplesPerSec: number;
  /** worst measured interval: its samples stored within about a flush age after it ended, over pks */
  onTimePct: number;
  latenessP50Ms: number | null;
  latenessP99Ms: number | null;
  missed: number;
  /** CPU µs per stored sample: the nodes together, Redis, FerretDB, the mock, the whole machine */
  usPerSample: {
    node: number | null;
    redis: number | null;
    ferretdb: number | null;
    mock: number | null;
    machine: number | null;
  };
  /** the nodes' garbage collection (prom-client's nodejs_gc_duration_seconds), µs per stored sample: part of `usPerSample.node` */
  gcUsPerSample: number | null;
  /** settings the nodes ran with over the defaults */
  env: Record<string, string>;
  cpuPct: Record<string, number>;
  machineBusyPct: number;
  rssBytes: Record<string, number>;
  bottleneck: string;
  /** Redis's own account (INFO commandstats) over the window: per command, calls and µs per stored sample */
  redisCommands: Array<{ command: string; calls: number; usPerSample: number }>;
  warnings: string[];
}

export async function mission(
  infra: Infra,
  o: MissionOptions,
  progress: (line: string) => void,
): Promise<MissionResult> {
  const I = o.intervalMs;
  const ids = Array.from({ length: o.nodes }, (_, i) => `m${i + 1}`);
  const c = new BenchCluster(infra, {
    pks: o.pks,
    intervalMs: I,
    ttlMs: o.ttlMs,
    concurrency: o.concurrency,
    flushMaxAgeMs: o.flushMaxAgeMs,
    env: o.env,
  });
  try {
    const metricsPorts = await Promise.all(ids.map(() => freePort()));
    ids.forEach((id, i) => c.spawn(id, ['start', '--metrics-port', String(metricsPorts[i])]));
    await c.settled(ids, 120_000);
    let start = nextBoundary(Date.now() + o.warmupMs, I);
    if (start + o.k * I + settleMs(o) > o.deadline)
      throw new Error(`skipped for the time budget (needs ${Math.round((start + o.k * I - Date.now()) / 1000)} s)`);
    progress(
      `  ${o.pks} pks on ${o.nodes} node(s): owned; warm-up until ${new Date(start).toISOString().slice(11, 19)}, then ${o.k} intervals`,
    );
    await sleepUntil(start - 1000);
    if (Date.now() > start) start += I;
    const stats0 = await commandStats(infra.redisClient);
    const gc0 = await gcSeconds(metricsPorts);
    const w = await measureWindow(c, start, o.k);
    const gc1 = await gcSeconds(metricsPorts);
    const stats1 = await commandStats(infra.redisClient);
    const stored = [...w.stored.values()].reduce((a, b) => a + b, 0);
    const us = (name: string): number | null => {
      const s = name === 'redis' ? redisTotal(w.cpu.seconds) : w.cpu.seconds.get(name);
      return s === undefined || stored === 0 ? null : round((s * 1e6) / stored, 1);
    };
    const nodeSeconds = ids.reduce((a, id) => a + (w.cpu.seconds.get(id) ?? 0), 0);
    const onTime = onTimePct(w, o.pks);
    const p99 = cardFigure(w, 'latenessP99Ms', maxOf);
    const cpuPct = Object.fromEntries([...w.cpu.percent].map(([k, v]) => [k, v]));
    const rssBytes = Object.fromEntries(ids.map((id) => [id, c.rss(id)]));
    const result: MissionResult = {
      pks: o.pks,
      intervalMs: I,
      nodes: o.nodes,
      k: o.k,
      demandPerSec: round(o.pks / (I / 1000), 1),
      samplesPerSec: w.samplesPerSec,
      onTimePct: onTime,
      latenessP50Ms: roundOrNull(cardFigure(w, 'latenessP50Ms', median)),
      latenessP99Ms: roundOrNull(p99),
      missed: w.intervals.reduce(
        (sum, cards) =>
          sum + [...cards.values()].reduce((a, card) => a + Number(card.stats.missedLastInterval ?? 0), 0),
        0,
      ),
      usPerSample: {
        node: stored > 0 ? round((nodeSeconds * 1e6) / stored, 1) : null,
        redis: us('redis'),
        ferretdb: us('ferretdb'),
        mock: us('mock'),
        machine:
          stored > 0 ? round(((w.cpu.machineBusyPct / 100) * o.cores * ((o.k * I) / 1000) * 1e6) / stored, 1) : null,
      },
      gcUsPerSample: gc0 !== null && gc1 !== null && stored > 0 ? round(((gc1 - gc0) * 1e6) / stored, 1) : null,
      env: o.env ?? {},
      cpuPct,
      machineBusyPct: w.cpu.machineBusyPct,
      rssBytes,
      bottleneck: bottleneck(w.cpu, ids, onTime >= 99.9),
      redisCommands: [...stats1]
        .map(([command, end]) => {
          const begin = stats0.get(command) ?? { calls: 0, usec: 0 };
          return {
            command,
            calls: end.calls - begin.calls,
            usPerSample: stored > 0 ? round((end.usec - begin.usec) / stored, 2) : 0,
          };
        })
        .filter((x) => x.calls > 0)
        .sort((a, b) => b.usPerSample - a.usPerSample)
        .slice(0, 8),
      warnings: [],
    };
    progress(
      `  ${w.samplesPerSec} samples/s of ${result.demandPerSec}, on time ${onTime}%, µs/sample node ${result.usPerSample.node}, redis ${result.usPerSample.redis}, ferretdb ${result.usPerSample.ferretdb}, mock ${result.usPerSample.mock}`,
    );
    await c.stop(ids, 10_000);
    result.warnings = c.warnings();
    return result;
  } finally {
    await c.close();
  }
}

/** Seconds the nodes spent collecting garbage so far, from their /metrics; null if one did not answer. */
async function gcSeconds(ports: number[]): Promise<number | null> {
  let sum = 0;
  for (const port of ports) {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`)
      .then((r) => r.text())
      .catch(() => null);
    if (text === null) return null;
    for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*\} ([0-9.e+-]+)$/gm)) sum += Number(m[1]);
  }
  return sum;
}

function roundOrNull(x: number | null): number | null {
  return x === null ? null : round(x);
}
