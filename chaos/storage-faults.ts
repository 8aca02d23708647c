// The storage layer's edges as faults: a period closed again after Redis lost its data and MongoDB
// its closed mark, a log document no node can apply, and a node frozen for longer than a period.
// Each returns the windows to check with their bound, as the other faults do (faults.ts).
import { Binary } from 'mongodb';
import { runCli } from '../test/helpers/cli.js';
import { sleep } from '../test/kit/wait.js';
import { scanKeys } from '../lib/shared/redis.js';
import { clusterKeys, PERIOD_KEYS_TTL_MS, SLICE_MARKS, sliceKeys } from '../lib/shared/keys.js';
import { collectionNames, type LogDoc } from '../lib/storage/format/documents.js';
import { QUARANTINE_COLLECTION } from '../lib/storage/state/quarantine.js';
import { intervalsPass, periodClosed, periods, pick, totalsReady, type Fault } from './faults.js';
import type { Chaos } from './harness.js';
import { none } from './invariants.js';

/**
 * A period closed, MongoDB's closed mark set back before it (its write failed, or its node died
 * before it), then Redis restarted empty: the period closes a second time from the rebuilt slices,
 * and nothing of it is counted twice (the invariants compare every total with its points).
 */
export const closedTwiceAfterRedisLoss: Fault = async (h) => {
  const from = h.checkedTo;
  const { bucketMs, now } = periods(h);
  const period = now - bucketMs;
  await periodClosed(h, period);
  const meta = h.cluster.db.collection<{ _id: string; p: number }>(collectionNames.meta);
  await meta.updateOne({ _id: 'closed' }, { $set: { p: period - bucketMs } });
  const restartedAt = Date.now();
  await h.redisServer.restart();
  await h.waitSteady(60_000);
  const rebuilt = await totalsReady(h);
  await periodClosed(h, period);
  const closedAgain = Date.now() - restartedAt;
  const to = await intervalsPass(h, 2);
  return {
    fault: 'a closed period closed again after Redis lost its data and MongoDB its closed mark',
    windows: [{ what: 'closed twice', from, to, allowed: none }],
    figures: { 'totals rebuilt ms': rebuilt, 'closed again ms after the restart': closedAgain },
  };
};

/**
 * A log document whose payload no node can read, in the period in progress (as if its writer
 * died before applying it): the period and the next close, the document is quarantined (kept in
 * MongoDB, named by `status`), and every other sample of the period is a point.
 */
export const poisonLogDocument: Fault = async (h) => {
  const from = h.checkedTo;
  const { bucketMs, now } = periods(h);
  const token = `chaos-poison:${Date.now()}`;
  await h.cluster.db
    .collection<LogDoc>(collectionNames.log(now))
    .insertOne({ _id: token, n: 'chaos', c: 2, b: new Binary(Buffer.from([0x7f, 0x00, 0x01, 0x02])) });
  const closed = await periodClosed(h, now);
  const next = await periodClosed(h, now + bucketMs);
  const kept = await h.cluster.db
    .collection<{ _id: string }>(QUARANTINE_COLLECTION)
    .findOne({ _id: `${now}:${token}` });
  const status = await runCli(['status'], h.cluster.env);
  const to = await intervalsPass(h, 1);
  const problems: string[] = [];
  if (!kept) problems.push('the document is not kept in the quarantine collection');
  if (!status.stdout.includes(token)) problems.push(`status does not name it: ${status.stdout.slice(-300)}`);
  return {
    fault: 'a log document no node can apply',
    windows: [{ what: 'poison log document', from, to, allowed: none }],
    figures: { 'its period closed ms after its end': closed, 'the next closed ms after its end': next },
    problems,
  };
};

/** Every mark a close raises: the cluster's closed mark, and each slice's closing and checkpoint marks. */
async function marks(h: Chaos): Promise<Map<string, number>> {
  const { redis, svc, totals } = h.cluster;
  const out = new Map<string, number>([['closed', Number(await redis.get(clusterKeys(svc.cluster).closed))]]);
  for (let s = 0; s < totals.slices; s++) {
    const [closing, ckpt] = await redis.hmget(
      sliceKeys(svc.cluster, totals.slices, s).marks,
      SLICE_MARKS.closing,
      SLICE_MARKS.checkpoint,
    );
    out.set(`slice ${s} closing`, Number(closing));
    out.set(`slice ${s} ckpt`, Number(ckpt));
  }
  return out;
}

/** Keys of a period or interval (`…:<epoch ms>…`) that have no bound on their life, or a longer one. */
async function unboundedKeys(h: Chaos): Promise<string[]> {
  const out: string[] = [];
  for await (const batch of scanKeys(h.cluster.redis, `${h.cluster.svc.cluster}:*`))
    for (const key of batch.filter((k) => /:\d{13}(:|$)/.test(k))) {
      const ttl = await h.cluster.redis.pttl(key);
      if (ttl === -1 || ttl > PERIOD_KEYS_TTL_MS) out.push(`${key} (${ttl})`);
    }
  return out;
}

/**
 * A node frozen (SIGSTOP) for longer than a period, then thawed: the others close the periods it
 * slept through, it goes on from where it stopped, and no mark a close raised moves back; no key of
 * a period is left without a bound on its life.
 */
export const nodePauseOverPeriod: Fault = async (h) => {
  const id = pick(h.running());
  const survivors = h.running().filter((x) => x !== id);
  const owners = await h.owners();
  const from = h.checkedTo;
  const pauseMs = periods(h).bucketMs + 2 * h.intervalMs;
  const pausedAt = Date.now();
  h.pause(id);
  await h.waitSteady(h.ttlMs + 20_000, survivors);
  const takeover = Date.now() - pausedAt;
  await sleep(pausedAt + pauseMs - Date.now());
  const before = await marks(h);
  h.resume(id);
  const rejoin = await h.waitSteady(60_000);
  const to = await intervalsPass(h, 2);
  const after = await marks(h);
  const problems: string[] = [];
  for (const [name, value] of before)
    if ((after.get(name) ?? 0) < value) problems.push(`mark ${name} moved back from ${value} to ${after.get(name)}`);
  const unbounded = await unboundedKeys(h);
  if (unbounded.length > 0)
    problems.push(
      `${unbounded.length} keys of a period without a bound on their life: ${unbounded.slice(0, 3).join(', ')}`,
    );
  const untilTakeover = Math.ceil(takeover / h.intervalMs) + 1;
  return {
    fault: `node ${id} paused ${pauseMs} ms (> a period)`,
    windows: [{ what: 'pause over a period', from, to, allowed: (pk) => (owners.get(pk) === id ? untilTakeover : 0) }],
    figures: { 'paused ms': Date.now() - pausedAt, 'takeover ms': takeover, 'rejoin ms': rejoin },
    problems,
  };
};
