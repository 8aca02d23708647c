// Scenario 8: one node under load with `node --cpu-prof`; the profile's self time summed per
// function and per package, so the hot path's costs are named by where they are spent.
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { BenchCluster, type Infra } from './cluster.js';
import { nextBoundary, sleepUntil } from '../test/kit/wait.js';
import { cpuColumns, measureWindow, onTimePct, settleMs } from './measure.js';
import { round } from './proc.js';
import { ROOT } from '../test/kit/children.js';

export interface ProfileOptions {
  pks: number;
  intervalMs: number;
  /** intervals measured (and profiled) after the node owns its pks */
  k: number;
  ttlMs: number;
  concurrency: number;
  flushMaxAgeMs?: number;
}

export interface ProfileEntry {
  name: string;
  selfMs: number;
  pct: number;
}

export interface ProfileResult extends ProfileOptions {
  samplesPerSec: number;
  onTimePct: number;
  cpuUsPerSample: number | null;
  cpu: ReturnType<typeof cpuColumns>;
  /** profiled time: from the node's start to its exit */
  profileMs: number;
  /** the profile file, relative to the repo (open it in Chrome DevTools or speedscope) */
  file: string;
  byFunction: ProfileEntry[];
  byPackage: ProfileEntry[];
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const NODE = 'n1';
const TOP = 15;

export async function profileNode(
  infra: Infra,
  o: ProfileOptions,
  progress: (line: string) => void,
): Promise<ProfileResult> {
  const dir = join(ROOT, 'bench', 'results', 'profiles');
  mkdirSync(dir, { recursive: true });
  const before = new Set(readdirSync(dir));
  const c = new BenchCluster(infra, o);
  try {
    c.spawn(NODE, ['start'], ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    await c.settled([NODE], 60_000);
    // a whole interval of warm-up, so the catch-up of the first interval is not measured
    const start = nextBoundary(Date.now() + o.intervalMs, o.intervalMs);
    progress(
      `  ${o.pks} pks every ${o.intervalMs / 1000} s: profiling ${o.k} intervals from ${new Date(start).toISOString().slice(11, 19)}`,
    );
    const w = await measureWindow(c, start, o.k);
    const stored = w.stored.get(NODE) ?? 0;
    const cpuS = w.cpu.seconds.get(NODE);
    const result = {
      samplesPerSec: w.samplesPerSec,
      onTimePct: onTimePct(w, o.pks),
      cpuUsPerSample: cpuS !== undefined && stored > 0 ? round((cpuS * 1e6) / stored, 1) : null,
      cpu: cpuColumns(w.cpu, [NODE]),
    };
    // the profile is written when the node exits
    await sleepUntil(Date.now() + settleMs(o));
    await c.stop([NODE], 60_000);
    const name = readdirSync(dir).find((f) => f.endsWith('.cpuprofile') && !before.has(f));
    if (!name) throw new Error(`the node wrote no .cpuprofile into ${dir}`);
    const file = join(dir, name);
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    for (const f of readdirSync(dir)) if (f !== name && !before.has(f)) rmSync(join(dir, f));
    return {
      ...o,
      ...result,
      profileMs: round((profile.endTime - profile.startTime) / 1000),
      file: relative(ROOT, file),
      ...summarize(profile),
    };
  } finally {
    await c.close();
  }
}

/** Self time per function and per package, busiest first, idle time left out. */
export function summarize(profile: CpuProfile): { byFunction: ProfileEntry[]; byPackage: ProfileEntry[] } {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const perFunction = new Map<string, number>();
  const perPackage = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    if (!frame || frame.functionName === '(idle)') return;
    busy += us;
    const where = place(frame.url);
    const fn = `${frame.functionName || '(anonymous)'}${where ? ` ${where}:${frame.lineNumber + 1}` : ''}`;
    perFunction.set(fn, (perFunction.get(fn) ?? 0) + us);
    const pkg = packageOf(frame.url, frame.functionName);
    perPackage.set(pkg, (perPackage.get(pkg) ?? 0) + us);
  });
  const top = (m: Map<string, number>): ProfileEntry[] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP)
      .map(([name, us]) => ({ name, selfMs: round(us / 1000), pct: round((us / busy) * 100, 1) }));
  return { byFunction: top(perFunction), byPackage: top(perPackage) };
}

/** The file of a frame, short: from node_modules/ or from the repo's dist/. */
function place(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  return dist >= 0 ? url.slice(dist + '/dist/'.length) : url.replace(/^file:\/\//, '');
}

/** Which package a frame's self time belongs to: an npm package, our own code, node's internals, or V8. */
function packageOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : 'V8 / native';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 2).join('/')}`;
  if (url.includes('/dist/lib/')) return 'influencer-node';
  return url;
}
