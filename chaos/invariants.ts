// What must hold after every fault, checked against what was stored: one point per (pk, interval),
// running totals and the API's average equal to the stored points, missed intervals within the
// fault's bound, no process dead that was not killed, memory back near its steady state.
import { totalsState } from '../lib/storage/state/totals-state.js';
import { readSummary } from '../lib/read/influencer.js';
import { readMembers } from '../lib/cluster/member-view.js';
import { decodeBucket, decodeOpen, unpackTotals, type Point } from '../lib/storage/format/codec.js';
import { loadLayout } from '../lib/storage/format/layout.js';
import { sleep } from '../test/kit/wait.js';
import type { Chaos } from './harness.js';
import { type PayloadDoc, collectionNames, docIds } from '../lib/storage/format/documents.js';

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
      if (
        !(await h.writeBacklog()) &&
        (await totalsState(h.cluster.redis, h.cluster.svc.cluster, h.cluster.totals.slices)) === 'ready'
      )
        break;
    } catch {
      /* Redis back in a moment */
    }
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

  // one moment: the running totals and the open buffers (one MULTI), then the buckets of the
  // periods whose buffers were gone at that moment
  const snap = await snapshot(h, to);
  const byPk = new Map<number, Map<number, number>>();
  let duplicates = 0;
  for (const [pk, points] of snap.points) {
    const m = new Map<number, number>();
    for (const p of points) {
      if (m.has(p.at)) duplicates++;
      m.set(p.at, p.f);
    }
    byPk.set(pk, m);
  }

  // 1. one point per (pk, interval)
  if (duplicates > 0) violations.push(`${duplicates} duplicate points for one (pk, interval)`);

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
    if (over > 0)
      violations.push(
        `${w.what}: ${over} pks missed more intervals than allowed (${missed} missed in ${intervals} intervals, worst pk ${worst})`,
      );
  }

  // 3. running totals = the points of the timeline, exactly: a sample is counted in the same
  //    Lua step that puts it in an open buffer, and a log document a killed node never applied is
  //    applied to both by its period's reconcile
  const wrong: string[] = [];
  for (const pk of h.universe.sortedPks) {
    const values = [...(byPk.get(pk)?.values() ?? [])];
    const tot = snap.totals.get(pk);
    const ok =
      tot === undefined
        ? values.length === 0
        : tot.n === values.length &&
          tot.s === values.reduce((a, b) => a + b, 0) &&
          tot.mn === Math.min(...values) &&
          tot.mx === Math.max(...values);
    if (!ok)
      wrong.push(
        `pk ${pk}: ${tot ? `${tot.n} samples, sum ${tot.s}` : 'no totals'} for ${values.length} points, sum ${values.reduce((a, b) => a + b, 0)}`,
      );
  }
  if (wrong.length > 0)
    violations.push(
      `${wrong.length} pks whose running totals are not their points, e.g. ${wrong.slice(0, 3).join('; ')}`,
    );
  figures['late samples (log only)'] = snap.late;

  // 3b. the average the API reports (lib/read/influencer.ts) = followerSum / samples, on a sample of pks
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
  violations.push(...h.serversExited());

  // 5. memory of the survivors back near its steady state
  for (const id of h.running()) {
    const base = h.baselineRss.get(id);
    const now = h.rssKb(id);
    if (base === undefined || now === undefined) continue;
    figures[`rss ${id} MB`] = `${Math.round(base / 1024)} → ${Math.round(now / 1024)}`;
    if (now > Math.max(base * RSS_FACTOR, base + RSS_SLACK_KB))
      violations.push(`node ${id}: RSS ${Math.round(now / 1024)} MB, steady state was ${Math.round(base / 1024)} MB`);
  }
  h.checkedTo = to;
  return { fault: run.fault, violations, figures };
}

interface Snapshot {
  /** per pk: samples, follower sum, min, max (from the packed totals written by lib/lua/apply.lua, `PkTotals` of lib/storage/format/codec.ts) */
  totals: Map<number, { n: number; s: number; mn: number; mx: number }>;
  /** per pk: every point of the timeline, open buffers and buckets */
  points: Map<number, Point[]>;
  /** samples the nodes logged after their period's close began */
  late: number;
}

/**
 * The totals and the open buffers of every pk in one MULTI (one moment), then, for each (pk,
 * period) whose buffer was gone, its bucket: a period closed after the MULTI has both, with the
 * same points, and the buffer is used.
 */
async function snapshot(h: Chaos, to: number): Promise<Snapshot> {
  const { redis, db, svc, totals: t } = h.cluster;
  const layout = await loadLayout(db, h.cluster.config('checker'));
  const periods = layout.periods(layout.firstPeriod, to + layout.bucketMs);
  const pks = h.universe.sortedPks;
  // one MULTI per slice: its keys share a hash slot, so this holds on a Redis Cluster too
  const replies = new Map<number, { totals: Buffer | null; open: (Buffer | null)[] }>();
  for (const [, list] of t.bySlice(Array.from(pks, (pk) => ({ pk })))) {
    const keys = t.keysOf(list[0]!.pk);
    const multi = redis.multi();
    for (const { pk } of list) {
      multi.hgetBuffer(keys.totals, String(pk));
      for (const p of periods) multi.getBuffer(keys.open(p, pk));
    }
    const values = (await multi.exec())!.map(([err, value]) => {
      if (err) throw err;
      return value as Buffer | null;
    });
    list.forEach(({ pk }, i) => {
      const at = i * (periods.length + 1);
      replies.set(pk, { totals: values[at]!, open: values.slice(at + 1, at + 1 + periods.length) });
    });
  }
  const totals = new Map<number, { n: number; s: number; mn: number; mx: number }>();
  for (const pk of pks) {
    const packed = replies.get(pk)?.totals;
    if (!packed) continue;
    const x = unpackTotals(pk, packed);
    totals.set(pk, { n: x.n, s: x.sum, mn: x.min, mx: x.max });
  }
  // the buckets: a scan per day collection is fine for a check (reads by the product never scan)
  const buckets = new Map<string, Buffer>();
  for (const name of new Set(periods.map((p) => collectionNames.buckets(p)))) {
    for await (const doc of db.collection<PayloadDoc>(name).find({})) buckets.set(doc._id, Buffer.from(doc.b.buffer));
  }
  const points = new Map<number, Point[]>();
  for (const pk of pks) {
    const list: Point[] = [];
    for (const [j, p] of periods.entries()) {
      const open = replies.get(pk)!.open[j]!;
      if (open) list.push(...decodeOpen(p, open));
      else {
        const b = buckets.get(docIds.bucket(pk, p));
        if (b) list.push(...decodeBucket(p, b));
      }
    }
    points.set(pk, list);
  }
  let late = 0;
  for (const c of await readMembers(redis, svc.cluster, 'index')) if (c.ok) late += Number(c.card.stats.late ?? 0);
  return { totals, points, late };
}
