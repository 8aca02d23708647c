// One measurement window over a running cluster: K whole intervals from a boundary. The figures
// come from the nodes' member cards (each card's stats describe the interval before its heartbeat)
// and from /proc (CPU of every process between the first and the last reading).
import type { MemberCard } from '../lib/cluster/card.js';
import { median, num, redisTotal, type BenchCluster } from './cluster.js';
import { sleep, sleepUntil } from '../test/kit/wait.js';
import { servers, type RedisClient } from '../lib/shared/redis.js';
import { cpuBetween, round, type CpuUse } from './proc.js';

export interface Window {
  /** each node's card written just before the window started */
  first: Map<string, MemberCard>;
  /** per measured interval, each node's card written just after that interval ended */
  intervals: Map<string, MemberCard>[];
  /** samples stored per second over the window, summed over the nodes */
  samplesPerSec: number;
  /** samples stored over the window, per node */
  stored: Map<string, number>;
  cpu: CpuUse;
  /** lastBatchMs and writeQueue as read about once a second, every node */
  batchMs: number[];
  writeQueue: number[];
}

/**
 * How long after an interval's end its last samples are stored: they wait for a flush (by size or
 * FLUSH_MAX_AGE_MS) and the write. A card read this long after the end counts them.
 */
export function settleMs(opts: { flushMaxAgeMs?: number }): number {
  return (opts.flushMaxAgeMs ?? 1000) + 300;
}

/** Measures `k` intervals starting at the boundary `start` (epoch ms). */
export async function measureWindow(c: BenchCluster, start: number, k: number): Promise<Window> {
  const I = c.opts.intervalMs;
  const lag = settleMs(c.opts);
  await sleepUntil(start + lag);
  const first = await c.cardsAfter(start + lag);
  const cpu0 = c.cpu();
  const batchMs: number[] = [];
  const writeQueue: number[] = [];
  const intervals: Map<string, MemberCard>[] = [];
  for (let i = 1; i <= k; i++) {
    const readAt = start + i * I + lag;
    while (Date.now() < readAt - 1000) {
      await sleep(1000);
      for (const card of (await c.cards()).values()) {
        batchMs.push(num(card.stats.lastBatchMs));
        writeQueue.push(num(card.stats.writeQueue));
      }
    }
    await sleepUntil(readAt);
    intervals.push(await c.cardsAfter(readAt));
  }
  const cpu1 = c.cpu();
  const last = intervals[intervals.length - 1]!;
  const stored = new Map<string, number>();
  let perSec = 0;
  for (const [id, end] of last) {
    const begin = first.get(id);
    if (!begin) continue;
    const n = num(end.stats.stored) - num(begin.stats.stored);
    stored.set(id, n);
    perSec += n / ((end.heartbeat - begin.heartbeat) / 1000);
  }
  return { first, intervals, samplesPerSec: round(perSec), stored, cpu: cpuBetween(cpu0, cpu1), batchMs, writeQueue };
}

/** Per interval: samples of that interval stored by the time of the reading, over `expected`, in %; the worst interval. */
export function onTimePct(w: Window, expected: number): number {
  const pcts = w.intervals.map((cards) => {
    const n = [...cards.values()].reduce((sum, c) => sum + num(c.stats.samplesLastInterval), 0);
    return Math.min(100, (n / expected) * 100);
  });
  return round(Math.min(...pcts), 2);
}

/** A card figure over every node and measured interval, reduced by `pick`. */
export function cardFigure(w: Window, key: string, pick: (xs: number[]) => number | null): number | null {
  const xs = w.intervals.flatMap((cards) => [...cards.values()].map((c) => num(c.stats[key]))).filter(Number.isFinite);
  return xs.length ? pick(xs) : null;
}

export const maxOf = (xs: number[]): number => Math.max(...xs);
export const minOf = (xs: number[]): number => Math.min(...xs);
export { median };

/** A process at ≥ this % of one core is saturated: each is one JS thread or one Redis thread. */
export const SATURATED_PCT = 90;

/**
 * What limited the window: the busiest of our processes if it saturated a core, else "on-time
 * fine" when the work was done, else the whole machine if it was busy (other processes included).
 */
export function bottleneck(cpu: CpuUse, nodeIds: string[], onTime: boolean): string {
  const label = (name: string): string =>
    nodeIds.includes(name) ? (nodeIds.length > 1 ? `node ${name}` : 'node') : name;
  const ranked = [...cpu.percent].sort((a, b) => b[1] - a[1]);
  const [topName, topPct] = ranked[0] ?? ['none', 0];
  const ours = [...cpu.percent.values()].reduce((a, b) => a + b, 0);
  const busy = `machine ${cpu.machineBusyPct}% busy, ours ${round(ours)}%`;
  if (topPct >= SATURATED_PCT) return `${label(topName)} ${topPct}% of a core`;
  if (onTime) return cpu.machineBusyPct >= SATURATED_PCT ? `on-time fine; ${busy}` : 'on-time fine';
  if (cpu.machineBusyPct >= SATURATED_PCT) return `${busy}, top ${label(topName)} ${topPct}%`;
  return `none saturated; top ${label(topName)} ${topPct}%`;
}

/** CPU % of one core for the shared processes and the node(s). */
export function cpuColumns(
  cpu: CpuUse,
  nodeIds: string[],
): { node: number; nodeMax: number; mock: number; redis: number; ferretdb: number; machine: number } {
  const p = (name: string): number => cpu.percent.get(name) ?? 0;
  const nodes = nodeIds.map(p);
  return {
    node: round(
      nodes.reduce((a, b) => a + b, 0),
      1,
    ),
    nodeMax: nodes.length ? Math.max(...nodes) : 0,
    mock: p('mock'),
    redis: redisTotal(cpu.percent) ?? 0,
    ferretdb: p('ferretdb'),
    machine: cpu.machineBusyPct,
  };
}

/** is_suspicious checks stored per second over the window, summed over the nodes. */
export function checksPerSec(w: Window): number {
  let perSec = 0;
  for (const [id, end] of w.intervals[w.intervals.length - 1] ?? []) {
    const begin = w.first.get(id);
    const checked = (card: MemberCard): number =>
      num((card.stats.suspicious as { checked?: unknown } | undefined)?.checked);
    if (begin && end.heartbeat > begin.heartbeat)
      perSec += (checked(end) - checked(begin)) / ((end.heartbeat - begin.heartbeat) / 1000);
  }
  return Number.isFinite(perSec) ? round(perSec, 1) : 0;
}

/** Redis's per-command totals: calls and µs spent inside the command (a script's calls count in its EVALSHA), every master's added up. */
export async function commandStats(redis: RedisClient): Promise<Map<string, { calls: number; usec: number }>> {
  const out = new Map<string, { calls: number; usec: number }>();
  for (const server of servers(redis))
    for (const line of (await server.info('commandstats')).split('\n')) {
      const m = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
      if (!m) continue;
      const sum = out.get(m[1]!) ?? { calls: 0, usec: 0 };
      out.set(m[1]!, { calls: sum.calls + Number(m[2]), usec: sum.usec + Number(m[3]) });
    }
  return out;
}
