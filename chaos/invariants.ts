// What must hold after every fault, checked against what was stored: one point per (pk, interval),
// running totals and the API's average equal to the stored points, missed intervals within the
// fault's bound, no process dead that was not killed, memory back near its steady state.
import { totalsState } from '../lib/rebuild.js';
import { readSummary } from '../lib/read.js';
import { collections, pointId } from '../lib/store.js';
import { totalsKeys } from '../lib/totals.js';
import { sleep } from '../test/helpers/cluster.js';
import type { Chaos } from './harness.js';

/** Intervals [from, to) in which each pk may miss at most `allowed(pk)` intervals. */
export interface Window {
  what: string;
  from: number;
  to: number;
  allowed: (pk: number) => number;
}

/** What a fault did, for the checks and the summary. */
export interface FaultRun {
  fault: string;
  windows: Window[];
  /** measured figures: takeover, recovery, ... (ms unless named otherwise) */
  figures: Record<string, number | string>;
  /** what went wrong while injecting it (a graceful stop that did not exit 0, ...) */
  problems?: string[];
}

export interface Verdict {
  fault: string;
  violations: string[];
  figures: Record<string, number | string>;
}

/** RSS may grow by half, or by 64 MB, over its steady state before it counts as not recovered. */
const RSS_FACTOR = 1.5;
const RSS_SLACK_KB = 64 * 1024;
/** pks whose average is read through the API's code each time */
const API_SAMPLE = 100;

export const none = (): number => 0;
export const unbounded = (): number => Infinity;

/**
 * Waits until every sample of the run's intervals is fetched and written: past the last interval
 * plus one (late ones are fetched first in the next), no node with a backlog (a running node
 * always holds a few samples younger than the flush age), and the totals not being rebuilt.
 */
async function settle(h: Chaos, to: number): Promise<void> {
  const deadline = Date.now() + 120_000;
  const flushAgeMs = Number(h.cluster.env.FLUSH_MAX_AGE_MS);
  await sleep(Math.max(0, to + h.intervalMs + 500 - Date.now()));
  for (;;) {
    try {
      if (!(await h.writeBacklog()) && (await totalsState(h.cluster.redis, h.cluster.svc.cluster)) === 'ready') break;
    } catch { /* Redis back in a moment */ }
    if (Date.now() > deadline) throw new Error('write backlog not written or totals not rebuilt after 120 s');
    await sleep(200);
  }
  await sleep(2 * flushAgeMs + 500);
}

export async function verify(h: Chaos, run: FaultRun): Promise<Verdict> {
  const violations: string[] = [...(run.problems ?? [])];
  const figures: Record<string, number | string> = { ...run.figures };
  const to = Math.max(...run.windows.map((w) => w.to));
  await settle(h, to);

  // an atomic snapshot of the running totals, then every stored point
  const snap = await snapshotTotals(h);
  const { timeline } = collections(h.cluster.db);
  const byPk = new Map<number, Map<number, { f: number; w: number }>>();
  let duplicates = 0;
  let badIds = 0;
  for (const doc of await timeline.find({}, { projection: { pk: 1, t: 1, f: 1, w: 1 } }).toArray()) {
    const t = doc.t.getTime();
    if (doc._id !== pointId(doc.pk, t)) badIds++;
    let points = byPk.get(doc.pk);
    if (!points) byPk.set(doc.pk, (points = new Map()));
    if (points.has(t)) duplicates++;
    points.set(t, { f: doc.f, w: doc.w });
  }

  // 1. one point per (pk, interval), under the _id that makes a second insert of it a duplicate key
  if (duplicates > 0) violations.push(`${duplicates} duplicate points for one (pk, interval)`);
  if (badIds > 0) violations.push(`${badIds} points stored under an _id that is not pk:interval`);

  // 2. missed intervals per pk within each window's bound
  for (const w of run.windows) {
    let missed = 0;
    let pks = 0;
    let worst = 0;
    let over = 0;
    for (const pk of h.universe.sortedPks) {
      const points = byPk.get(pk);
      let n = 0;
      for (let at = w.from; at < w.to; at += h.intervalMs) if (!points?.has(at)) n++;
      if (n === 0) continue;
      missed += n;
      pks++;
      worst = Math.max(worst, n);
      if (n > w.allowed(pk)) over++;
    }
    const intervals = (w.to - w.from) / h.intervalMs;
    figures[`${w.what}: intervals`] = intervals;
    figures[`${w.what}: missed`] = missed;
    figures[`${w.what}: pks missing`] = pks;
    figures[`${w.what}: worst pk`] = worst;
    if (over > 0) violations.push(`${w.what}: ${over} pks missed more intervals than allowed (${missed} missed in ${intervals} intervals, worst pk ${worst})`);
  }

  // 3. running totals = the points they count: those before the rebuild cutoff (added up from
  //    MongoDB) and those of every batch applied by the snapshot. A point not counted is either
  //    newer than the snapshot or of a batch a SIGKILLed node inserted but never counted (one per kill).
  const uncountedBatches = new Map<number, number>();
  const wrong: string[] = [];
  const old = snap.at - 3 * h.intervalMs;
  for (const pk of h.universe.sortedPks) {
    const counted: number[] = [];
    for (const [t, p] of byPk.get(pk) ?? []) {
      if (t < snap.since || snap.batches.has(p.w)) counted.push(p.f);
      else if (t < old) uncountedBatches.set(p.w, (uncountedBatches.get(p.w) ?? 0) + 1);
    }
    const tot = snap.totals.get(pk);
    const ok = tot === undefined ? counted.length === 0
      : tot.n === counted.length && tot.s === counted.reduce((a, b) => a + b, 0) && tot.mn === Math.min(...counted) && tot.mx === Math.max(...counted);
    if (!ok) wrong.push(`pk ${pk}: ${tot ? `${tot.n} samples, sum ${tot.s}` : 'no totals'} for ${counted.length} points counted, sum ${counted.reduce((a, b) => a + b, 0)}`);
  }
  if (wrong.length > 0) violations.push(`${wrong.length} pks whose running totals are not their counted points, e.g. ${wrong.slice(0, 3).join('; ')}`);
  if (uncountedBatches.size > h.kills) {
    violations.push(`${uncountedBatches.size} batches stored but never counted, more than the ${h.kills} SIGKILLs explain`);
  }
  figures['points never counted (SIGKILL mid-batch)'] = [...uncountedBatches.values()].reduce((a, b) => a + b, 0);

  // 3b. the average the API reports (lib/read.ts) = followerSum / samples, on a sample of pks
  let wrongAverage = 0;
  for (const pk of h.universe.sortedPks.filter((_, i) => i % Math.ceil(h.universe.size / API_SAMPLE) === 0)) {
    const summary = await readSummary(h.cluster.totals, pk);
    const totals = await h.cluster.totals.read(pk);
    if (!summary || !totals || summary.samples !== totals.samples) continue; // moved on between the reads
    if (summary.averageFollowers !== Math.round((totals.followerSum / totals.samples) * 100) / 100) wrongAverage++;
  }
  if (wrongAverage > 0) violations.push(`${wrongAverage} pks whose average (API) is not followerSum / samples`);

  // 4. nothing died that was not killed, servers included
  violations.push(...h.crashed().map((c) => `crashed: ${c}`));
  for (const [name, server] of [['redis-server', h.redisServer], ['ferretdb', h.mongoServer]] as const) {
    const child = server.process;
    if (child && (child.exitCode !== null || child.signalCode !== null)) violations.push(`${name} exited`);
  }

  // 5. memory of the survivors back near its steady state
  for (const id of h.running()) {
    const base = h.baselineRss.get(id);
    const now = h.rssKb(id);
    if (base === undefined || now === undefined) continue;
    figures[`rss ${id} MB`] = `${Math.round(base / 1024)} → ${Math.round(now / 1024)}`;
    if (now > Math.max(base * RSS_FACTOR, base + RSS_SLACK_KB)) violations.push(`node ${id}: RSS ${Math.round(now / 1024)} MB, steady state was ${Math.round(base / 1024)} MB`);
  }
  h.checkedTo = to;
  return { fault: run.fault, violations, figures };
}

interface Snapshot {
  at: number;
  /** the totals count every sample from this interval on; older ones come from a rebuild */
  since: number;
  /** tokens of the batches applied to the totals */
  batches: Set<number>;
  /** per pk: samples, follower sum, min, max (fields of lib/lua/apply-samples.lua) */
  totals: Map<number, { n: number; s: number; mn: number; mx: number }>;
}

/** The totals of every pk and the batches applied to them, read in one MULTI: one moment. */
async function snapshotTotals(h: Chaos): Promise<Snapshot> {
  const keys = totalsKeys(h.cluster.svc.cluster);
  const multi = h.cluster.redis.multi().get(keys.since).keys(keys.batch(0).replace(/0$/, '*'));
  for (const pk of h.universe.sortedPks) multi.hmget(keys.influencer(pk), 'n', 's', 'mn', 'mx');
  const at = Date.now();
  const replies = (await multi.exec())!.map(([err, value]) => { if (err) throw err; return value; });
  const [since, batchKeys, ...hashes] = replies as [string | null, string[], ...Array<Array<string | null>>];
  const totals = new Map<number, { n: number; s: number; mn: number; mx: number }>();
  h.universe.sortedPks.forEach((pk, i) => {
    const [n, s, mn, mx] = hashes[i];
    if (n !== null) totals.set(pk, { n: Number(n), s: Number(s), mn: Number(mn), mx: Number(mx) });
  });
  return { at, since: Number(since ?? 0), batches: new Set(batchKeys.map((k) => Number(k.slice(k.lastIndexOf(':') + 1)))), totals };
}
