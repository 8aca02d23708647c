// CPU-limited "machines" for the benchmark: one cgroup v1 group per process in the `cpu` controller
// (a CFS quota of cores × period) and in `cpuacct` (the CPU time the group used, in ns). They are
// mounted separately here (/sys/fs/cgroup/cpu and /sys/fs/cgroup/cpuacct), so each machine is a
// group in both; where they are mounted together the two paths are one directory, which works too.
// Linux, cgroup v1 and root only: elsewhere `quotaSupport()` says why and the scenario does not run.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const CPU_ROOT = '/sys/fs/cgroup/cpu';
const ACCT_ROOT = '/sys/fs/cgroup/cpuacct';
/** Every group of every run lives under this one, a folder per run (the bench's pid). */
const BASE = 'influencer-bench';
/** The CFS period: Kubernetes' default; a quota of 0.1 core is then 10 ms of CPU every 100 ms. */
export const PERIOD_US = 100_000;
/**
 * The CPU weight of the benchmark's groups (cgroup v1's largest): the root group's tasks each weigh
 * 1024 at most, so other work on the box cannot take what a quota allows (with the default 1024 a
 * few busy processes elsewhere held three 0.2-core Redis masters at 51-66 % of their quota).
 */
const BENCH_SHARES = 262_144;

/** What a group's files say at one instant. */
export interface QuotaReading {
  /** CPU time used since the group was made, ns (cpuacct.usage) */
  usageNs: number;
  /** periods in which the group ran, and those in which it was stopped at its quota (cpu.stat) */
  periods: number;
  throttled: number;
}

const live = new Set<CpuMachine>();

/** null where quotas can be made, else why not, in one line. */
export function quotaSupport(): string | null {
  if (process.platform !== 'linux') return `CPU quotas need Linux's cgroup v1 (this is ${process.platform})`;
  for (const file of [join(CPU_ROOT, 'cpu.cfs_quota_us'), join(ACCT_ROOT, 'cpuacct.usage')]) {
    if (!existsSync(file)) return `no ${file}: the cgroup v1 cpu and cpuacct controllers are not mounted there`;
  }
  try {
    const probe = new CpuMachine('probe', 1);
    probe.remove();
  } catch (err) {
    return `cannot make a CPU quota under ${join(CPU_ROOT, BASE)}: ${(err as Error).message}`;
  }
  return null;
}

/** One process's machine: a CPU quota (or none: accounted only) and its accounting. */
export class CpuMachine {
  private readonly dirs: string[];

  private quota: number | null = null;

  /** `cores`: the quota (0.1 = a tenth of one core), or null for no quota, only accounting. */
  constructor(
    readonly name: string,
    cores: number | null,
  ) {
    sweepStaleRuns();
    this.dirs = [CPU_ROOT, ACCT_ROOT].map((root) => join(root, BASE, String(process.pid), name));
    for (const dir of this.dirs) mkdirSync(dir, { recursive: true });
    for (const dir of [join(CPU_ROOT, BASE), join(CPU_ROOT, BASE, String(process.pid))])
      writeFileSync(join(dir, 'cpu.shares'), String(BENCH_SHARES));
    live.add(this);
    writeFileSync(join(this.dirs[0]!, 'cpu.cfs_period_us'), String(PERIOD_US));
    this.limit(cores);
  }

  /** The quota in cores, or null for none. */
  get cores(): number | null {
    return this.quota;
  }

  /** Sets the quota (null: none); it holds from the next CFS period on. */
  limit(cores: number | null): void {
    const us = cores === null ? -1 : Math.max(1000, Math.round(cores * PERIOD_US));
    writeFileSync(join(this.dirs[0]!, 'cpu.cfs_quota_us'), String(us));
    this.quota = cores;
  }

  /** Moves the process (every thread) into the machine. */
  add(pid: number): void {
    for (const dir of this.dirs) writeFileSync(join(dir, 'cgroup.procs'), String(pid));
  }

  read(): QuotaReading {
    const usageNs = Number(readFileSync(join(this.dirs[1]!, 'cpuacct.usage'), 'utf8'));
    const stat = readFileSync(join(this.dirs[0]!, 'cpu.stat'), 'utf8');
    const field = (name: string): number => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(stat)?.[1] ?? 0);
    return { usageNs, periods: field('nr_periods'), throttled: field('nr_throttled') };
  }

  /** Moves what still runs in it back to the root group and removes the group; synchronous, for exit handlers. */
  remove(): void {
    live.delete(this);
    for (const dir of this.dirs) removeGroup(dir);
  }
}

/**
 * Moves the benchmark itself into a group of the benchmark's weight without a quota: the processes
 * it starts (servers, mock, nodes) begin there too, so every one of them runs ahead of other work on
 * the box. Where quotas cannot be made it changes nothing and says why (null when it worked).
 */
export function prioritizeBenchmark(): string | null {
  const unsupported = quotaSupport();
  if (unsupported) return unsupported;
  new CpuMachine('benchmark', null).add(process.pid);
  return null;
}

/** Removes every machine this process made: on the scenario's end, an error, Ctrl-C and exit. */
export function removeMachines(): void {
  for (const m of [...live]) m.remove();
  for (const root of [CPU_ROOT, ACCT_ROOT]) removeGroup(join(root, BASE, String(process.pid)));
}

function removeGroup(dir: string): void {
  if (!existsSync(dir)) return;
  const root = dir.startsWith(ACCT_ROOT) ? ACCT_ROOT : CPU_ROOT;
  for (const sub of readdirSync(dir, { withFileTypes: true })) if (sub.isDirectory()) removeGroup(join(dir, sub.name));
  for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
    try {
      writeFileSync(join(root, 'cgroup.procs'), pid);
    } catch {
      /* gone meanwhile */
    }
  }
  // a process that is still exiting keeps its group busy for a few ms: wait for it, synchronously (exit handlers)
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    }
  }
  // still busy after half a second: the next run's sweep removes it
}

let swept = false;

/** Groups left by a run that was SIGKILLed (its pid gone): removed once, before the first new one. */
function sweepStaleRuns(): void {
  if (swept) return;
  swept = true;
  for (const root of [CPU_ROOT, ACCT_ROOT]) {
    const base = join(root, BASE);
    if (!existsSync(base)) continue;
    for (const run of readdirSync(base))
      if (/^\d+$/.test(run) && !existsSync(`/proc/${run}`)) removeGroup(join(base, run));
  }
}
