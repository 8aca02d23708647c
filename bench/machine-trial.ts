// One trial of scenario 11: N node processes, each in a machine of its own (bench/cgroup.ts) whose
// quota holds from an interval before the window, polling P pks over servers that sit in machines
// too, measured over K whole intervals. Every process's CPU comes from its machine's cgroup
// accounting, and the mock's latency from a probe outside every quota.
import { BenchCluster, PK_MIN, type ClusterOptions, type Infra } from './cluster.js';
import { nextBoundary, sleep, sleepUntil } from '../test/kit/wait.js';
import { CpuMachine, type QuotaReading } from './cgroup.js';
import { cardFigure, maxOf, measureWindow, onTimePct } from './measure.js';
import { round, snapshot, type CpuSnapshot } from './proc.js';

/** A process's use of its machine over the measured window. */
export interface MachineUse {
  name: string;
  /** its quota in cores, or null for none (the mock) */
  cores: number | null;
  /** % of one core */
  cpuPct: number;
  /** % of its quota; the mock, which has none, against the one core its one thread can use */
  loadPct: number;
  /** % of the CFS periods in which it ran that stopped it at its quota */
  throttledPct: number;
  usPerSample: number | null;
}

export interface Trial {
  nodes: number;
  pks: number;
  demandPerSec: number;
  samplesPerSec: number;
  /** the worst measured interval's samples stored within about a flush age of its end, over pks */
  onTimePct: number;
  onTime: boolean;
  latenessP99Ms: number | null;
  machines: MachineUse[];
  /** the busiest machine against its quota */
  busiest: MachineUse;
  /** what limited it: a machine at its quota, else the whole box, else nothing */
  limit: string;
  machineBusyPct: number;
  /** the mock's answers as a client outside every quota saw them over the window, ms */
  mockProbe: { requests: number; meanMs: number | null; p50Ms: number | null; p99Ms: number | null };
  warnings: string[];
}

export interface TrialSettings extends Omit<ClusterOptions, 'pks'> {
  k: number;
  /** from the ring settling to the window, at least: the nodes run without their quota until an interval before it */
  warmupMs: number;
  nodeCores: number;
}

/** On time: this % of every measured interval's samples stored within about a flush age of its end. */
const ON_TIME_PCT = 99.9;
/** A machine at or over this % of its quota is saturated (CFS lets a group go a little past it per period). */
export const AT_QUOTA_PCT = 90;
/** The whole box this % busy or more: quotas may not have been delivered, other work included. */
const BOX_BUSY_PCT = 90;

/** The scenario's machines by process name (n1…, redis or redis1…, ferretdb, mock), made once and reused. */
export class Machines {
  readonly byName = new Map<string, CpuMachine>();

  place(name: string, cores: number | null, pid: number): void {
    let m = this.byName.get(name);
    if (!m) this.byName.set(name, (m = new CpuMachine(name, cores)));
    m.limit(cores);
    m.add(pid);
  }

  read(): Map<string, QuotaReading> {
    return new Map([...this.byName].map(([name, m]) => [name, m.read()]));
  }
}

/** A BenchCluster whose nodes start in machines of their own and whose CPU figures come from the machines. */
class MachineCluster extends BenchCluster {
  /** what every cpu() reading saw, for the throttling over the same window */
  readonly readings: Map<string, QuotaReading>[] = [];

  constructor(
    infra: Infra,
    opts: ClusterOptions,
    private readonly machines: Machines,
  ) {
    super(infra, opts);
  }

  /** Starts the node in its machine without a quota: its start-up is not what is measured. */
  override spawn(id: string, args?: string[], nodeArgs?: string[]) {
    const node = super.spawn(id, args, nodeArgs);
    this.machines.place(id, null, node.pid);
    return node;
  }

  override cpu(): CpuSnapshot {
    const s = snapshot(new Map());
    const r = this.machines.read();
    for (const [name, x] of r) s.seconds.set(name, x.usageNs / 1e9);
    this.readings.push(r);
    return s;
  }
}

export async function machineTrial(
  infra: Infra,
  machines: Machines,
  /** processes whose machines count besides the nodes: the Redis masters, ferretdb, mock */
  servers: string[],
  nodes: number,
  pks: number,
  o: TrialSettings,
): Promise<Trial> {
  const I = o.intervalMs;
  const ids = Array.from({ length: nodes }, (_, i) => `n${i + 1}`);
  const c = new MachineCluster(infra, { ...o, pks }, machines);
  try {
    for (const id of ids) c.spawn(id);
    await c.settled(ids, 120_000);
    const demandPerSec = round(pks / (I / 1000), 1);
    // modules, JIT and the catch-up of the first interval (up to 1.5 intervals of samples) run
    // unthrottled; the quota holds from an interval before the window, so the window is steady
    const start = nextBoundary(Date.now() + o.warmupMs, I);
    await sleepUntil(start - I);
    for (const id of ids) machines.byName.get(id)!.limit(o.nodeCores);
    await sleepUntil(start);
    let probe = probeMock(infra.mock.url, pks);
    let w = await measureWindow(c, start, o.k);
    // storing more than the demand, it is still working off its start-up catch-up: late then says
    // nothing of the steady state, so it gets up to two more windows (a saturated node stores less)
    for (let extra = 0; extra < 2; extra++) {
      if (onTimePct(w, pks) >= ON_TIME_PCT || w.samplesPerSec <= 1.02 * demandPerSec) break;
      await probe.stop();
      probe = probeMock(infra.mock.url, pks);
      w = await measureWindow(c, nextBoundary(Date.now(), I), o.k);
    }
    const latencies = await probe.stop();
    const stored = [...w.stored.values()].reduce((a, b) => a + b, 0);
    const [r0, r1] = c.readings.slice(-2) as [Map<string, QuotaReading>, Map<string, QuotaReading>];
    const used = [...ids, ...servers].map((name) =>
      machineUse(name, machines.byName.get(name)!.cores, r0.get(name)!, r1.get(name)!, w.cpu.wallS, stored),
    );
    const busiest = used.reduce((a, b) => (b.loadPct > a.loadPct ? b : a));
    const onTime = onTimePct(w, pks);
    const trial: Trial = {
      nodes,
      pks,
      demandPerSec,
      samplesPerSec: w.samplesPerSec,
      onTimePct: onTime,
      onTime: onTime >= ON_TIME_PCT,
      latenessP99Ms: cardFigure(w, 'latenessP99Ms', maxOf),
      machines: used,
      busiest,
      limit: limitOf(busiest, w.cpu.machineBusyPct),
      machineBusyPct: w.cpu.machineBusyPct,
      mockProbe: {
        requests: latencies.length,
        meanMs: latencies.length ? round(latencies.reduce((a, b) => a + b, 0) / latencies.length, 1) : null,
        p50Ms: quantile(latencies, 0.5),
        p99Ms: quantile(latencies, 0.99),
      },
      warnings: [],
    };
    // a node that fell behind would flush its backlog for up to 30 s: a short grace, then close() kills it
    await c.stop(ids, 5000);
    trial.warnings = c.warnings();
    return trial;
  } finally {
    await c.close();
  }
}

function machineUse(
  name: string,
  cores: number | null,
  a: QuotaReading,
  b: QuotaReading,
  wallS: number,
  stored: number,
): MachineUse {
  const seconds = (b.usageNs - a.usageNs) / 1e9;
  const cpuPct = round((seconds / wallS) * 100, 1);
  const periods = b.periods - a.periods;
  return {
    name,
    cores,
    cpuPct,
    loadPct: round(cpuPct / (cores ?? 1), 1),
    throttledPct: periods > 0 ? round(((b.throttled - a.throttled) / periods) * 100, 1) : 0,
    usPerSample: stored > 0 ? round((seconds * 1e6) / stored, 1) : null,
  };
}

/** A machine at its quota, the box when it was busy (both can hold: a quota is a ceiling, not a promise), or neither. */
function limitOf(busiest: MachineUse, boxBusyPct: number): string {
  const top = `${busiest.name} ${busiest.loadPct}% of ${busiest.cores === null ? 'a core (no quota)' : 'its quota'}`;
  const box = `the box ${boxBusyPct}% busy`;
  if (busiest.loadPct >= AT_QUOTA_PCT) return boxBusyPct >= BOX_BUSY_PCT ? `${top}, and ${box}` : top;
  if (boxBusyPct >= BOX_BUSY_PCT) return `${box} (top: ${top})`;
  return `none at its quota (top: ${top}; ${box})`;
}

/** The mock's latency as a client outside every quota sees it: a request every 200 ms, never more than one at a time. */
function probeMock(url: string, pks: number): { stop: () => Promise<number[]> } {
  const times: number[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = performance.now();
      const pk = PK_MIN + Math.floor(Math.random() * pks);
      const ok = await fetch(`${url}/api/v1/influencers/${pk}`)
        .then((r) => r.arrayBuffer().then(() => r.ok))
        .catch(() => false);
      if (ok) times.push(performance.now() - t0);
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return times;
    },
  };
}

function quantile(xs: number[], q: number): number | null {
  if (xs.length === 0) return null;
  const sorted = [...xs].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!, 1);
}
