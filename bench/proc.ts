// What /proc says about a process (CPU, RSS) and about the machine: Linux only, like the benchmark.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

let ticksPerSecond: number | undefined;

/** Clock ticks per second of utime/stime (`getconf CLK_TCK`, normally 100). */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** utime + stime of a process in seconds, or null once it is gone. */
export function cpuSeconds(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // the command name (field 2) may hold spaces: count fields after its closing parenthesis
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15
  return (Number(fields[11]) + Number(fields[12])) / clockTicks();
}

/** Resident set size in bytes, or null once the process is gone. */
export function rssBytes(pid: number): number | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryBytes: number;
  memory: string;
}

export function machineInfo(): MachineInfo {
  let model = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) model = m[1]!.trim();
  } catch {
    /* keep os.cpus() */
  }
  const bytes = totalmem();
  return { cores: cpus().length, cpuModel: model, memoryBytes: bytes, memory: `${(bytes / 2 ** 30).toFixed(1)} GiB` };
}

/** CPU seconds of named processes and of the machine at one instant. */
export interface CpuSnapshot {
  at: number;
  seconds: Map<string, number>;
  machine: { busy: number; total: number };
}

/** Takes snapshots of a changing set of named pids; the delta of two gives CPU % of one core. */
export function snapshot(pids: ReadonlyMap<string, number>): CpuSnapshot {
  const seconds = new Map<string, number>();
  for (const [name, pid] of pids) {
    const s = cpuSeconds(pid);
    if (s !== null) seconds.set(name, s);
  }
  return { at: performance.now(), seconds, machine: machineJiffies() };
}

export interface CpuUse {
  /** % of one core per process name, over the window */
  percent: Map<string, number>;
  /** CPU seconds per process name, over the window */
  seconds: Map<string, number>;
  /** % of the whole machine busy (every process, ours or not) */
  machineBusyPct: number;
  wallS: number;
}

export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot): CpuUse {
  const wallS = (b.at - a.at) / 1000;
  const percent = new Map<string, number>();
  const seconds = new Map<string, number>();
  for (const [name, end] of b.seconds) {
    const start = a.seconds.get(name);
    if (start === undefined) continue;
    seconds.set(name, end - start);
    percent.set(name, round(((end - start) / wallS) * 100, 1));
  }
  const total = b.machine.total - a.machine.total;
  const machineBusyPct = total > 0 ? round(((b.machine.busy - a.machine.busy) / total) * 100, 1) : 0;
  return { percent, seconds, machineBusyPct, wallS };
}

export function round(x: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
