// Scenario 7: the per-interval polling of one node with the daily is_suspicious check off, at its
// real rate, and at a rate that keeps the check's own concurrency busy the whole time.
import type { Infra } from './cluster.js';
import { singleNode, type SingleNodeOptions, type SingleNodeRow } from './single-node.js';

export interface SuspiciousImpactOptions extends Omit<SingleNodeOptions, 'counts' | 'env'> {
  pks: number;
  /** the check's period in the "daily" run: a day compressed as much as the interval is */
  dailyMs: number;
  /** a period short enough that the check runs at its concurrency limit throughout */
  stressMs: number;
}

export interface SuspiciousImpactRow extends SingleNodeRow {
  variant: string;
  periodMs: number;
}

export interface SuspiciousImpactResult {
  pks: number;
  intervalMs: number;
  k: number;
  concurrency: string;
  rows: SuspiciousImpactRow[];
}

export async function suspiciousImpact(
  infra: Infra,
  o: SuspiciousImpactOptions,
  progress: (line: string) => void,
): Promise<SuspiciousImpactResult> {
  const variants = [
    { variant: 'off', periodMs: 0 },
    { variant: 'daily', periodMs: o.dailyMs },
    { variant: 'saturated', periodMs: o.stressMs },
  ];
  const rows: SuspiciousImpactRow[] = [];
  for (const v of variants) {
    progress(`  is_suspicious ${v.variant}${v.periodMs ? ` (every pk once per ${v.periodMs / 1000} s)` : ''}`);
    const r = await singleNode(
      infra,
      { ...o, counts: [o.pks], env: { SUSPICIOUS_INTERVAL_MS: String(v.periodMs) } },
      progress,
    );
    const row = r.rows[0];
    if (!row) throw new Error(`the ${v.variant} run measured nothing: ${r.stoppedBecause}`);
    rows.push({ ...row, ...v });
  }
  return { pks: o.pks, intervalMs: o.intervalMs, k: o.k, concurrency: 'SUSPICIOUS_CONCURRENCY 4 (default)', rows };
}
