// The Redis side of one stored sample alone: the apply script (lib/lua/apply.lua) on a Redis of its
// own holding N pks, fed batches of 1,000 samples of one-minute intervals as a node sends them (one
// call per layout slice, the batch recorded as applied), and once per interval every slice's
// ranking snapshot. Prints Redis's CPU per sample (its own process, /proc), with and without the
// snapshots, and per command the µs spent inside it (INFO commandstats), median of the rounds.
// `node dist/bench/lua-step.js [--pks N] [--rounds R]`
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { Totals } from '../lib/storage/state/totals.js';
import { takeRanking } from '../lib/storage/state/ranking.js';
import { sliceCount } from '../lib/storage/format/layout.js';
import { SLICE_MARKS, sliceKeys } from '../lib/shared/keys.js';
import { median } from './cluster.js';
import { commandStats } from './measure.js';
import { cpuSeconds, round } from './proc.js';
import { startRedis } from './services.js';
import { killAll } from '../test/kit/children.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const BATCH = 1000;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { pks: { type: 'string', default: '200000' }, rounds: { type: 'string', default: '5' } },
  });
  const pks = Number(values.pks);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(pks) || pks < BATCH || !Number.isInteger(rounds) || rounds < 1)
    throw new Error(`--pks must be an integer ≥ ${BATCH}, --rounds ≥ 1`);
  const server = await startRedis();
  const redis = new Redis(server.url);
  try {
    const cluster = 'lua';
    const slices = sliceCount(pks);
    const totals = new Totals(redis, cluster, slices);
    for (let s = 0; s < slices; s++) await redis.hset(sliceKeys(cluster, slices, s).marks, SLICE_MARKS.since, '0');
    const period = Math.floor(Date.now() / HOUR) * HOUR;
    let token = 1;
    // one interval of every pk, in batches of 1,000 (minute m of the period)
    const interval = async (m: number): Promise<number> => {
      for (let first = 0; first < pks; first += BATCH) {
        const samples = Array.from({ length: Math.min(BATCH, pks - first) }, (_, i) => {
          const pk = 1_000_000 + first + i;
          return {
            pk,
            at: period + m * MINUTE,
            followerCount: 100_000 + ((pk * 7919 + m * 104_729) % 50_000),
            followingCount: 300 + (m % 17),
            // a node sends a username the first time, and when it changes
            ...(m === 0 ? { username: `user${pk}` } : {}),
          };
        });
        await Promise.all(
          [...totals.bySlice(samples)].map(([slice, list]) => totals.applySlice(period, slice, list, 'live')),
        );
        await totals.markApplied(period, String(token++));
      }
      return pks;
    };
    const rank = async (): Promise<void> => {
      for (let s = 0; s < slices; s++) await takeRanking(redis, sliceKeys(cluster, slices, s), Date.now(), Date.now());
    };
    // the keyspace as a node finds it: every pk with totals and a few points in its open buffer
    for (let m = 0; m < 3; m++) await interval(m);
    const pid = server.child.pid!;
    const cpu: number[] = [];
    const withRanking: number[] = [];
    const byCommand = new Map<string, number[]>();
    for (let r = 0; r < rounds; r++) {
      const [c0, s0] = [cpuSeconds(pid)!, await commandStats(redis)];
      const n = await interval(3 + r);
      const c1 = cpuSeconds(pid)!;
      await rank();
      const [c2, s1] = [cpuSeconds(pid)!, await commandStats(redis)];
      cpu.push(((c1 - c0) * 1e6) / n);
      withRanking.push(((c2 - c0) * 1e6) / n);
      for (const [cmd, { usec }] of s1) {
        if (cmd === 'info') continue;
        const list = byCommand.get(cmd) ?? [];
        list.push((usec - (s0.get(cmd)?.usec ?? 0)) / n);
        byCommand.set(cmd, list);
      }
    }
    const rows = [...byCommand]
      .map(([cmd, list]) => [cmd, round(median(list) ?? 0, 2)] as const)
      .filter(([, us]) => us > 0.005)
      .sort((a, b) => b[1] - a[1]);
    const rounded = (list: number[]): string => list.map((x) => round(x, 1)).join(', ');
    console.log(`${pks} pks in ${slices} slices, batches of ${BATCH}, ${rounds} rounds of one interval each`);
    console.log(`Redis CPU per sample, median: ${round(median(cpu) ?? 0, 2)} µs (rounds: ${rounded(cpu)})`);
    console.log(
      `with the interval's ranking snapshots: ${round(median(withRanking) ?? 0, 2)} µs (rounds: ${rounded(withRanking)})`,
    );
    console.log(`inside commands, µs per sample (median): ${rows.map(([cmd, us]) => `${cmd} ${us}`).join(', ')}`);
  } finally {
    redis.disconnect();
    killAll();
  }
}

main().catch((err: Error) => {
  console.error(err.message);
  killAll();
  process.exit(1);
});
