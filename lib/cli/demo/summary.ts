// The demo's one-line summary of the cluster, printed every few seconds while it runs.
import type { ClusterStatus } from '../../cluster/status.js';
import type { Logger } from '../../shared/log.js';
import { PeriodicJob } from '../../shared/services.js';

/** Prints `line()` every `everyMs` (or why it could not be read) until stopped. */
export class SummaryLines {
  private readonly job: PeriodicJob<void>;

  constructor(
    private readonly line: () => Promise<string>,
    private readonly out: (line: string) => void,
    everyMs: number,
    log: Logger,
  ) {
    const failure = 'printing the summary failed';
    this.job = new PeriodicJob(() => this.print(), { log, failure, everyMs, firstAfterMs: everyMs });
    this.job.start();
  }

  async stop(): Promise<void> {
    await this.job.stop();
  }

  private async print(): Promise<void> {
    try {
      this.out(await this.line());
    } catch (err) {
      this.out(`${clock()}  cluster status unavailable: ${(err as Error).message}`);
    }
  }
}

/** members, owned pks, samples stored in the last complete interval, on-time share, missed, write queue. */
export function summaryLine(s: ClusterStatus, expectedNodes: number, pks: number): string {
  const active = s.members.filter((m) => m.readable && m.state === 'active');
  const sum = (key: string): number => active.reduce((a, m) => a + (Number(m.stats?.[key]) || 0), 0);
  const samples = sum('samplesLastInterval');
  const weighted = active.reduce(
    (a, m) => {
      const pct = m.stats?.onTimePct;
      const n = Number(m.stats?.samplesLastInterval) || 0;
      return typeof pct === 'number' ? { pct: a.pct + pct * n, n: a.n + n } : a;
    },
    { pct: 0, n: 0 },
  );
  const onTime = weighted.n > 0 ? `${(weighted.pct / weighted.n).toFixed(1)}%` : '-';
  return (
    `${clock()}  members ${active.length}/${expectedNodes} active  owned ${sum('owned')}/${pks}  samples/interval ${samples}` +
    `  on-time ${onTime}  missed ${sum('missed')}  queue ${sum('writeQueue')}`
  );
}

function clock(): string {
  return new Date().toISOString().slice(11, 19);
}
