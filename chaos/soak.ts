// npm run soak -- --minutes 30: random faults against one cluster for the given time, every
// invariant checked after each, then a summary. Exit 1 when an invariant was violated.
import {
  clockSkew,
  badInput,
  garbageMembers,
  handoverMidPeriod,
  killMidPeriod,
  mockFaults,
  mockRestart,
  mongoDownAtClose,
  mongoDownDuringRebuild,
  mongoOutage,
  nodePause,
  redisDownDuringStop,
  redisEviction,
  redisFreeze,
  redisOlderSnapshot,
  redisRestart,
  rollingRestart,
  sigkill,
  type Fault,
} from './faults.js';
import { closedTwiceAfterRedisLoss, nodePauseOverPeriod, poisonLogDocument } from './storage-faults.js';
import { Chaos, suiteOptions } from './harness.js';
import { verify, type Verdict } from './invariants.js';
import { format, save } from './report.js';

const USAGE = 'usage: npm run soak -- [--minutes N] [--pks N] [--interval-ms N]';

/** Every fault the soak picks from, at random; the clock skews are a third of an interval. */
function faultList(intervalMs: number): Fault[] {
  const skew = Math.round(intervalMs / 3);
  return [
    sigkill,
    nodePause,
    rollingRestart,
    redisRestart,
    redisFreeze,
    mongoOutage,
    mockFaults,
    mockRestart,
    clockSkew(skew),
    clockSkew(-skew),
    garbageMembers,
    badInput,
    killMidPeriod,
    handoverMidPeriod,
    mongoDownAtClose,
    redisOlderSnapshot,
    redisEviction,
    redisDownDuringStop,
    mongoDownDuringRebuild,
    closedTwiceAfterRedisLoss,
    poisonLogDocument,
    nodePauseOverPeriod,
  ];
}

function help(defaults: { minutes: number; pks: number; intervalMs: number }): string {
  return `${USAGE}

Random faults against one cluster of 3 nodes (its own redis-server, FerretDB and mock) for the given
time, every invariant checked after each, then a summary. Exit 1 when an invariant was violated.

Flags:
  --minutes N       how long (default ${defaults.minutes})
  --pks N           pks tracked (default ${defaults.pks})
  --interval-ms N   INTERVAL_MS of the nodes (default ${defaults.intervalMs})
  -h, --help        this text

Faults, one at a time, chosen at random:
${faultList(defaults.intervalMs)
  .map((f) => `  ${f.name}`)
  .join('\n')}
`;
}

function parseArgs(argv: string[]): { minutes: number; pks: number; intervalMs: number } {
  const out = { minutes: 30, pks: 400, intervalMs: suiteOptions([]).intervalMs };
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(help(out));
    process.exit(0);
  }
  const names: Record<string, keyof typeof out> = {
    '--minutes': 'minutes',
    '--pks': 'pks',
    '--interval-ms': 'intervalMs',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    const value = Number(argv[i + 1]);
    if (!key || !(value > 0)) {
      console.error(`soak: ${key ? `${argv[i]} needs a positive number` : `unknown argument ${argv[i]}`}\n${USAGE}`);
      process.exit(2);
    }
    out[key] = value;
  }
  return out;
}

/** Teardowns run in reverse order at the end, as tap would run them. */
class Scope {
  private readonly fns: Array<() => unknown> = [];
  teardown(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async close(): Promise<void> {
    for (const fn of this.fns.reverse())
      await Promise.resolve(fn()).catch((err: Error) => console.error(`teardown: ${err.message}`));
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const faults = faultList(args.intervalMs);
  const scope = new Scope();
  process.once('SIGINT', () => {
    void scope.close().then(() => process.exit(130));
  });
  const started = Date.now();
  const deadline = started + args.minutes * 60_000;
  const verdicts: Verdict[] = [];
  try {
    console.log(`soak: ${args.minutes} min, 3 nodes, ${args.pks} pks, INTERVAL_MS ${args.intervalMs}`);
    const h = await Chaos.start(scope, {
      ...suiteOptions(['a', 'b', 'c']),
      pks: args.pks,
      intervalMs: args.intervalMs,
    });
    while (Date.now() < deadline) {
      const fault = faults[Math.floor(Math.random() * faults.length)];
      const v = await verify(h, await fault(h));
      verdicts.push(v);
      save('soak', v);
      const minute = ((Date.now() - started) / 60_000).toFixed(1);
      console.log(
        `${minute.padStart(5)} min  ${v.violations.length === 0 ? 'ok  ' : 'FAIL'} ${v.fault}${v.violations.map((x) => `\n             ! ${x}`).join('')}`,
      );
    }
    const codes = await h.stopAll();
    const crashed = h.crashed();
    console.log(
      `\n== soak summary: ${verdicts.length} faults in ${((Date.now() - started) / 60_000).toFixed(1)} min\n${format(verdicts)}`,
    );
    console.log(
      `\nfinal stop: exit codes ${JSON.stringify(codes)}${crashed.length ? `; crashed: ${crashed.join('; ')}` : ''}`,
    );
    const failed = verdicts.filter((v) => v.violations.length > 0).length;
    const badStops = Object.values(codes).filter((c) => c !== 0).length;
    console.log(
      `${verdicts.length - failed} faults ok, ${failed} with violations${badStops ? `, ${badStops} nodes did not stop with 0` : ''}`,
    );
    return failed > 0 || badStops > 0 || crashed.length > 0 ? 1 : 0;
  } finally {
    await scope.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`soak: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
