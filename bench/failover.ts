// Scenario 4: three nodes under load, one SIGKILLed mid-interval. How long until the survivors own
// every pk, and how many intervals each of the killed node's pks missed (read back from Mongo).
import { normalizeMembers, Ring } from '../lib/ring/ring.js';
import { ownedBy } from '../lib/ring/ownership.js';
import { PkUniverse } from '../lib/ring/pk-universe.js';
import { loadConfig } from '../lib/ops/config.js';
import { loadLayout } from '../lib/storage/format/layout.js';
import { mapLimit, TimelineReader } from '../lib/storage/read/reader.js';
import { BenchCluster, PK_MIN, type Infra } from './cluster.js';
import { nextBoundary, sleep, sleepUntil } from '../test/kit/wait.js';
import { round } from './proc.js';

export interface FailoverOptions {
  pks: number;
  intervalMs: number;
  ttlMs: number;
  concurrency: number;
  flushMaxAgeMs?: number;
  /** whole intervals kept after the one in which the survivors took over */
  intervalsAfter: number;
  /** epoch ms: if the scenario could not end by then, it is skipped */
  deadline: number;
}

export interface FailoverResult {
  pks: number;
  intervalMs: number;
  ttlMs: number;
  killedPks: number;
  /** kill → survivors' cards own every pk between the two of them */
  takeoverMs: number;
  /** design goal: TTL + 2 s */
  takeoverGoalMs: number;
  window: { from: string; to: string; intervals: number };
  missedMax: number;
  missedMean: number;
  affectedPks: number;
  /** missed intervals of pks the killed node never owned: 0 expected */
  otherPksMissed: number;
  survivorsExitCodes: (number | null)[];
  /** graceful stop of both survivors, ms */
  stopMs: number;
  warnings: string[];
}

const IDS = ['a', 'b', 'c'];
const VICTIM = 'c';

export async function failover(
  infra: Infra,
  o: FailoverOptions,
  progress: (line: string) => void,
): Promise<FailoverResult> {
  const I = o.intervalMs;
  const worstMs = 6000 + (3.5 + o.intervalsAfter) * I + o.ttlMs + 2000;
  if (Date.now() + worstMs > o.deadline)
    throw new Error(`skipped for the time budget (needs about ${Math.round(worstMs / 1000)} s)`);
  const c = new BenchCluster(infra, {
    pks: o.pks,
    intervalMs: I,
    ttlMs: o.ttlMs,
    concurrency: o.concurrency,
    flushMaxAgeMs: o.flushMaxAgeMs,
  });
  try {
    for (const id of IDS) c.spawn(id);
    const cards = await c.settled(IDS, 60_000);
    // the victim's pks, from the ring every member built
    const universe = new PkUniverse(PK_MIN, c.pkMax);
    const ring = new Ring(normalizeMembers([...cards.values()].map((card) => ({ id: card.id, weight: card.weight }))));
    const victimPks = new Set(ownedBy(universe, ring, VICTIM).pks);
    if (victimPks.size !== Number(cards.get(VICTIM)?.stats.owned)) {
      throw new Error(
        `ring says ${VICTIM} owns ${victimPks.size} pks, its card ${String(cards.get(VICTIM)?.stats.owned)}`,
      );
    }
    // the first full interval after all are active; the kill in its middle
    const from = nextBoundary(Date.now(), I);
    const killAt = from + I / 2;
    progress(`  3 nodes active; SIGKILL of ${VICTIM} at ${new Date(killAt).toISOString().slice(11, 19)}`);
    await sleepUntil(killAt);
    c.assertAlive();
    c.kill(VICTIM);
    const killedAt = Date.now();
    const survivors = IDS.filter((id) => id !== VICTIM);
    await c.waitFor(
      (now) => {
        const owned = [...now.values()].reduce((sum, card) => sum + Number(card.stats.owned ?? 0), 0);
        return now.size === survivors.length && owned === o.pks;
      },
      o.ttlMs + 30_000,
      'the survivors to own every pk',
      20,
    );
    const takeoverMs = Date.now() - killedAt;
    progress(`  survivors own every pk ${takeoverMs} ms after the kill`);
    // whole intervals after the takeover, then a graceful stop
    const to = nextBoundary(Date.now(), I) + o.intervalsAfter * I;
    await sleepUntil(to + 200);
    const stopping = Date.now();
    const codes = await c.stop(survivors, 60_000);
    const stopMs = Date.now() - stopping;
    await sleep(100);
    const gaps = await missedPerPk(c, from, to);
    let max = 0;
    let sum = 0;
    let affected = 0;
    let others = 0;
    for (let pk = PK_MIN; pk <= c.pkMax; pk++) {
      const missed = gaps.get(pk) ?? 0;
      if (!victimPks.has(pk)) {
        others += missed;
        continue;
      }
      max = Math.max(max, missed);
      sum += missed;
      if (missed > 0) affected++;
    }
    return {
      pks: o.pks,
      intervalMs: I,
      ttlMs: o.ttlMs,
      killedPks: victimPks.size,
      takeoverMs,
      takeoverGoalMs: o.ttlMs + 2000,
      window: { from: new Date(from).toISOString(), to: new Date(to).toISOString(), intervals: (to - from) / I },
      missedMax: max,
      missedMean: round(sum / Math.max(1, victimPks.size), 3),
      affectedPks: affected,
      otherPksMissed: others,
      survivorsExitCodes: codes,
      stopMs,
      warnings: c.warnings(),
    };
  } finally {
    await c.close();
  }
}

/** Per pk, the intervals in [from, to) with no timeline point, read as the API reads a timeline. */
async function missedPerPk(c: BenchCluster, from: number, to: number): Promise<Map<number, number>> {
  const db = c.infra.mongo.db(c.dbName);
  const env = c.env('reader');
  const reader = new TimelineReader(c.infra.redisClient, db, await loadLayout(db, loadConfig({}, env)), c.cluster);
  const intervals = (to - from) / c.opts.intervalMs;
  const gaps = new Map<number, number>();
  const pks = Array.from({ length: c.pkMax - PK_MIN + 1 }, (_, i) => PK_MIN + i);
  const counts = await mapLimit(
    pks,
    16,
    async (pk) => new Set((await reader.points(pk, from, to)).map((p) => p.at)).size,
  );
  pks.forEach((pk, i) => {
    if (counts[i]! < intervals) gaps.set(pk, intervals - counts[i]!);
  });
  return gaps;
}
