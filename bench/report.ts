// Tables for stdout and bench/results/RUNS.md, the JSON result file, and where the run happened.
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MachineInfo } from './proc.js';
import { ROOT } from '../test/kit/children.js';

export type Cell = string | number | boolean | null | undefined;

export interface Table {
  title: string;
  columns: string[];
  rows: Cell[][];
  notes?: string[];
}

export function cell(v: Cell): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'number')
    return Number.isInteger(v) && Math.abs(v) >= 10_000 ? v.toLocaleString('en-US') : String(v);
  return v;
}

export function textTable(t: Table): string {
  const cells = [t.columns, ...t.rows.map((r) => r.map(cell))];
  const widths = t.columns.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [t.title, line(t.columns), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)];
  for (const n of t.notes ?? []) out.push(`  ${n}`);
  return out.join('\n');
}

export function markdownTable(t: Table): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  // numbers right-aligned, text left
  const numeric = t.columns.map((_, i) =>
    t.rows.every((r) => typeof r[i] === 'number' || r[i] === null || r[i] === undefined),
  );
  const out = [
    `#### ${t.title}`,
    '',
    `| ${t.columns.map(esc).join(' | ')} |`,
    `|${numeric.map((n) => (n ? ' ---: ' : ' --- ')).join('|')}|`,
  ];
  for (const r of t.rows) out.push(`| ${r.map((c) => esc(cell(c))).join(' | ')} |`);
  if (t.notes?.length) out.push('', ...t.notes.map((n) => `- ${n}`));
  return out.join('\n');
}

export interface RunInfo {
  date: string;
  mode: 'quick' | 'full';
  command: string;
  machine: MachineInfo;
  commit: string;
  node: string;
  /** whether the benchmark's processes ran at the highest CPU weight, ahead of other work on the box */
  cpuWeight?: string;
  durationS?: number;
}

/** `git rev-parse --short HEAD`, plus "+dirty" when the tree has changes (read-only git calls). */
export function gitCommit(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const status = execFileSync('git', ['--no-optional-locks', 'status', '--porcelain'], {
      cwd: ROOT,
      encoding: 'utf8',
    }).trim();
    return status ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}

export interface ScenarioOutcome {
  id: number;
  name: string;
  ok: boolean;
  seconds: number;
  error?: string;
  result?: unknown;
  tables: Table[];
}

/** bench/results/<ISO date>.json; returns its path relative to the repo. */
export function writeJson(info: RunInfo, outcomes: ScenarioOutcome[]): string {
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const name = `${info.date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`;
  const scenarios = outcomes.map(({ tables: _tables, ...rest }) => rest);
  writeFileSync(join(dir, name), `${JSON.stringify({ ...info, scenarios }, null, 2)}\n`);
  return `bench/results/${name}`;
}

/** Where every run appends its section; BENCHMARKS.md is the report written from them. */
export const RUNS_FILE = 'bench/results/RUNS.md';

/** Appends one dated section to RUNS_FILE (creating the file with a title if it is missing). */
export function appendRun(info: RunInfo, outcomes: ScenarioOutcome[], jsonPath: string): void {
  const file = join(ROOT, RUNS_FILE);
  if (!existsSync(file))
    writeFileSync(file, '# Benchmark runs\n\nEvery `npm run bench` run, oldest first; the report is BENCHMARKS.md.\n');
  const m = info.machine;
  const lines = [
    '',
    `## ${info.date.slice(0, 16).replace('T', ' ')} UTC — ${info.mode}`,
    '',
    `- machine: ${m.cores} cores, ${m.cpuModel}, ${m.memory} RAM`,
    `- commit: ${info.commit}; node ${info.node}`,
    ...(info.cpuWeight ? [`- CPU weight: ${info.cpuWeight}`] : []),
    `- command: \`${info.command}\``,
    `- run time: ${formatDuration(info.durationS ?? 0)}; raw figures: \`${jsonPath}\``,
  ];
  for (const o of [...outcomes].sort((a, b) => a.id - b.id)) {
    lines.push('', `### ${o.id}. ${o.name}${o.ok ? '' : ' — FAILED'}`, '');
    if (!o.ok) lines.push(`Failed after ${o.seconds} s: ${o.error ?? 'unknown error'}`);
    for (const t of o.tables) lines.push(markdownTable(t), '');
  }
  appendFileSync(
    file,
    `${lines
      .join('\n')
      .replace(/\n{3,}/g, '\n\n')
      .trimEnd()}\n`,
  );
}

export function formatDuration(s: number): string {
  const m = Math.floor(s / 60);
  return m > 0 ? `${m} min ${Math.round(s - m * 60)} s` : `${Math.round(s)} s`;
}
