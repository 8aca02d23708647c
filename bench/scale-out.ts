// Scenario 2: the same workload on 1, 2 and 4 nodes of one cluster (nodes join one after the
// other): total samples/s, balance, scaling, and which shared process saturated.
import { BenchCluster, type Infra } from './cluster.js';
import { nextBoundary } from '../test/kit/wait.js';
import { bottleneck, cpuColumns, measureWindow, onTimePct } from './measure.js';
import { round } from './proc.js';

export interface ScaleOutOptions {
  pks: number;
  intervalMs: number;
  nodeCounts: number[];
  k: number;
  /** time between the ring settling and the first measured boundary, at least; the first step (cold start) gets firstWarmupMs */
  warmupMs: number;
  firstWarmupMs: number;
  ttlMs: number;
  concurrency: number;
  flushMaxAgeMs?: number;
  cores: number;
  /** epoch ms: a step that would end later is skipped */
  deadline: number;
}

export interface ScaleOutRow {
  nodes: number;
  demandPerSec: number;
  samplesPerSec: number;
  /** samplesPerSec over demand, % */
  metPct: number;
  onTimePct: number;
  /** max / mean owned */
  balance: number;
  /** samples/s per node relative to one node's samples/s */
  perNodeVsOne: number | null;
  /** total samples/s relative to one node's */
  speedup: number | null;
  cpuUsPerSample: number | null;
  cpu: ReturnType<typeof cpuColumns>;
  bottleneck: string;
}

export interface ScaleOutResult {
  pks: number;
  intervalMs: number;
  k: number;
  warmupMs: number;
  firstWarmupMs: number;
  rows: ScaleOutRow[];
  note: string;
  warnings: string[];
}

export async function scaleOut(
  infra: Infra,
  o: ScaleOutOptions,
  progress: (line: string) => void,
): Promise<ScaleOutResult> {
  const I = o.intervalMs;
  const c = new BenchCluster(infra, {
    pks: o.pks,
    intervalMs: I,
    ttlMs: o.ttlMs,
    concurrency: o.concurrency,
    flushMaxAgeMs: o.flushMaxAgeMs,
  });
  const rows: ScaleOutRow[] = [];
  const demand = round(o.pks / (I / 1000), 1);
  let warnings: string[];
  const skipped: number[] = [];
  try {
    for (const n of o.nodeCounts) {
      // joining, settling, warming up, K intervals and the last card read
      if (Date.now() + 2500 + (rows.length === 0 ? o.firstWarmupMs : o.warmupMs) + (o.k + 0.5) * I > o.deadline) {
        skipped.push(n);
        continue;
      }
      const ids = Array.from({ length: n }, (_, i) => `n${i + 1}`);
      for (const id of ids) if (!c.nodes.has(id)) c.spawn(id);
      const cards = await c.settled(ids, 60_000);
      const start = nextBoundary(Date.now() + (rows.length === 0 ? o.firstWarmupMs : o.warmupMs), I);
      progress(`  ${n} node(s): settled, measuring ${o.k} interval(s)`);
      const w = await measureWindow(c, start, o.k);
      const owned = ids.map((id) => Number(cards.get(id)?.stats.owned ?? 0));
      const mean = owned.reduce((a, b) => a + b, 0) / n;
      const one = rows[0];
      const onTime = onTimePct(w, o.pks);
      const cpuS = ids.reduce((s, id) => s + (w.cpu.seconds.get(id) ?? 0), 0);
      const stored = [...w.stored.values()].reduce((a, b) => a + b, 0);
      rows.push({
        nodes: n,
        demandPerSec: demand,
        samplesPerSec: w.samplesPerSec,
        metPct: round((w.samplesPerSec / demand) * 100, 1),
        onTimePct: onTime,
        balance: round(Math.max(...owned) / mean, 3),
        perNodeVsOne: one ? round(w.samplesPerSec / n / one.samplesPerSec, 2) : 1,
        speedup: one ? round(w.samplesPerSec / one.samplesPerSec, 2) : 1,
        cpuUsPerSample: stored > 0 ? round((cpuS * 1e6) / stored, 1) : null,
        cpu: cpuColumns(w.cpu, ids),
        bottleneck: bottleneck(w.cpu, ids, onTime >= 99.9),
      });
      progress(`  ${n} node(s): ${w.samplesPerSec} samples/s of ${demand} demanded, on time ${onTime}%`);
    }
    // a node that fell behind would flush its backlog for up to 30 s: a short grace, then close() kills it
    await c.stop([...c.nodes.keys()], 5000);
    warnings = c.warnings();
  } finally {
    await c.close();
  }
  return {
    pks: o.pks,
    intervalMs: I,
    k: o.k,
    warmupMs: o.warmupMs,
    firstWarmupMs: o.firstWarmupMs,
    rows,
    note:
      scaleNote(rows, o.cores) + (skipped.length ? `. Skipped for the time budget: ${skipped.join(', ')} node(s)` : ''),
    warnings,
  };
}

/** A sentence or two on what the rows show. */
function scaleNote(rows: ScaleOutRow[], cores: number): string {
  if (rows.length === 0) return 'no rows';
  const one = rows[0]!;
  const met = (r: ScaleOutRow) => r.metPct >= 99 && r.onTimePct >= 99.9;
  const parts: string[] = [];
  if (met(one)) {
    parts.push(
      `one node met the demand (${one.samplesPerSec}/s): more nodes can only split it, so "per node vs 1" falls as 1/n by construction`,
    );
  } else {
    const best = rows.reduce((a, b) => (b.samplesPerSec > a.samplesPerSec ? b : a));
    parts.push(
      `one node fell short (${one.samplesPerSec}/s of ${one.demandPerSec}/s); the best was ${best.nodes} node(s) at ${best.samplesPerSec}/s = ${best.speedup}× one node`,
    );
  }
  const short = rows.filter((r) => r.nodes > 1 && !met(r));
  if (short.length)
    parts.push(
      `${short.map((r) => `${r.nodes} nodes fell short (${r.samplesPerSec}/s, on time ${r.onTimePct}%; ${r.bottleneck})`).join('; ')}`,
    );
  parts.push(`all processes share ${cores} cores: another node adds a process's fixed cost, not CPU`);
  return parts.join('. ');
}
