// Keeps each fault's verdict (figures and violations) in .chaos/<suite>.json, for the summary
// printed after the run (chaos/summary.ts) and the soak's.
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../test/kit/children.js';
import type { Verdict } from './invariants.js';

export const RESULTS_DIR = join(ROOT, '.chaos');

const kept = new Map<string, Verdict[]>();

export function save(suite: string, v: Verdict): void {
  const list = kept.get(suite) ?? [];
  list.push(v);
  kept.set(suite, list);
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, `${suite}.json`), JSON.stringify(list, null, 1));
}

export function loadAll(): Array<{ suite: string; verdicts: Verdict[] }> {
  let files: string[];
  try {
    files = readdirSync(RESULTS_DIR)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch {
    return [];
  }
  return files.map((f) => ({
    suite: f.replace(/\.json$/, ''),
    verdicts: JSON.parse(readFileSync(join(RESULTS_DIR, f), 'utf8')) as Verdict[],
  }));
}

/** One block per fault: its name, ok or its violations, then its figures. */
export function format(verdicts: Verdict[]): string {
  const out: string[] = [];
  for (const v of verdicts) {
    out.push(`${v.violations.length === 0 ? 'ok  ' : 'FAIL'} ${v.fault}`);
    for (const x of v.violations) out.push(`       ! ${x}`);
    const figures = Object.entries(v.figures).map(([k, val]) => `${k} ${val}`);
    for (let i = 0; i < figures.length; i += 4) out.push(`       ${figures.slice(i, i + 4).join(' · ')}`);
  }
  return out.join('\n');
}
