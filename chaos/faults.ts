// The faults, each injected into a running cluster and recovered from; each returns the windows of
// intervals to check with the bound DESIGN.md sets for it, and what it measured. Shared by the
// chaos suite (one tap test per fault) and the soak (random faults for a given time).
import { runCli } from '../test/helpers/cli.js';
import { intervalStart, sleep, until } from '../test/kit/wait.js';
import { totalsState, totalsTrusted } from '../lib/storage/state/totals-state.js';
import { closeGraceMs } from '../lib/storage/jobs/closer.js';
import { clusterKeys, memberIndexKey, nodeKey } from '../lib/shared/keys.js';
import type { Chaos } from './harness.js';
import { none, unbounded, type FaultRun, type Window } from './invariants.js';

export type Fault = (h: Chaos) => Promise<FaultRun>;

/** Waits for `n` more whole intervals; resolves to the start of the interval then in progress. */
export async function intervalsPass(h: Chaos, n: number): Promise<number> {
  await sleep(intervalStart(Date.now(), h.intervalMs) + (n + 1) * h.intervalMs + 50 - Date.now());
  return h.intervalNow();
}

/** While a fault lasts (until `clean`) intervals may be missed; from `clean` on, none. */
function whileAndAfter(what: string, from: number, clean: number, to: number): Window[] {
  return [
    { what: `${what}: while`, from, to: clean, allowed: unbounded },
    { what: `${what}: after`, from: clean, to, allowed: none },
  ];
}

export function pick<T>(items: T[]): T {
  return items[Math.floor(Math.random() * items.length)];
}

/** A node SIGKILLed, then started again with its id: each pk it owned may miss one interval. */
export const sigkill: Fault = async (h) => {
  const id = pick(h.running());
  const survivors = h.running().filter((x) => x !== id);
  const owners = await h.owners();
  const owned = [...owners.values()].filter((o) => o === id).length;
  const from = h.checkedTo;
  const killedAt = Date.now();
  await h.kill(id);
  await h.waitSteady(h.ttlMs + 20_000, survivors);
  const takeover = Date.now() - killedAt;
  // started again once its key is gone (the takeover shows it is)
  h.spawn(id);
  const rejoin = await h.waitSteady(60_000);
  const to = await intervalsPass(h, 2);
  return {
    fault: `SIGKILL of ${id}, restarted`,
    windows: [{ what: 'kill to rejoin', from, to, allowed: (pk) => (owners.get(pk) === id ? 1 : 0) }],
    figures: { 'pks of the killed node': owned, 'takeover ms': takeover, 'rejoin ms': rejoin },
  };
};

/**
 * A node frozen (SIGSTOP) for four intervals, longer than the TTL, then thawed (SIGCONT): its peers take
 * its pks over, and on waking it fetches nothing past its deadline but counts what it slept through
 * as missed (the stored points cannot show when they were fetched: its counter does), stores nothing
 * twice and rejoins. Each of its pks may miss the intervals until the takeover.
 */
export const nodePause: Fault = async (h) => {
  const id = pick(h.running());
  const survivors = h.running().filter((x) => x !== id);
  const owners = await h.owners();
  const owned = [...owners.values()].filter((o) => o === id).length;
  const missedBefore = Number((await h.stats(id)).missed ?? 0);
  const from = h.checkedTo;
  const pauseMs = 4 * h.intervalMs;
  const pausedAt = Date.now();
  h.pause(id);
  await h.waitSteady(h.ttlMs + 20_000, survivors);
  const takeover = Date.now() - pausedAt;
  await sleep(pausedAt + pauseMs - Date.now());
  h.resume(id);
  const paused = Date.now() - pausedAt;
  const rejoin = await h.waitSteady(60_000);
  const to = await intervalsPass(h, 2);
  const missed = Number((await h.stats(id)).missed ?? 0) - missedBefore;
  // each of its pks has a slot in every interval it slept through, give or take the ones at either end
  const slept = Math.floor(paused / h.intervalMs);
  const problems =
    missed < owned * (slept - 1) || missed > owned * (slept + 2)
      ? [
          `node ${id} counted ${missed} missed pk-intervals for ${owned} pks paused ${paused} ms: fetched late, or counted twice`,
        ]
      : [];
  const untilTakeover = Math.ceil(takeover / h.intervalMs) + 1;
  return {
    fault: `node ${id} paused ${pauseMs} ms (> TTL)`,
    windows: [{ what: 'pause to rejoin', from, to, allowed: (pk) => (owners.get(pk) === id ? untilTakeover : 0) }],
    figures: {
      'pks of the paused node': owned,
      'paused ms': paused,
      'takeover ms': takeover,
      'rejoin ms': rejoin,
      'missed it counted': missed,
    },
    problems,
  };
};

/** Every node in turn stopped with SIGTERM and started again: nothing may be missed. */
export const rollingRestart: Fault = async (h) => {
  const from = h.checkedTo;
  const figures: Record<string, number | string> = {};
  const codes: Array<number | null> = [];
  for (const id of h.running()) {
    const others = h.running().filter((x) => x !== id);
    const t0 = Date.now();
    codes.push(await h.stop(id));
    figures[`stop ${id} ms`] = Date.now() - t0;
    await h.waitSteady(30_000, others);
    h.spawn(id);
    figures[`rejoin ${id} ms`] = await h.waitSteady(60_000);
  }
  figures['exit codes'] = codes.join(' ');
  const to = await intervalsPass(h, 2);
  return {
    fault: 'graceful rolling restart',
    windows: [{ what: 'rolling restart', from, to, allowed: none }],
    figures,
    problems: codes.some((c) => c !== 0) ? [`exit codes ${codes.join(', ')}`] : [],
  };
};

/** Redis killed and started empty: members announce themselves again, the totals are rebuilt. */
export const redisRestart: Fault = async (h) => {
  const from = h.checkedTo;
  await h.redisServer.restart();
  const members = await h.waitSteady(60_000);
  const rebuilt = await totalsReady(h);
  const to = await intervalsPass(h, 2);
  return {
    fault: 'Redis restarted without its data',
    windows: [{ what: 'Redis restart', from, to, allowed: none }],
    figures: { 'members back ms': members, 'totals rebuilt ms (after that)': rebuilt },
  };
};

/** Redis frozen (SIGSTOP) for twice the heartbeat TTL, then thawed: every member key has expired. */
export const redisFreeze: Fault = async (h) => {
  const from = h.checkedTo;
  const pauseMs = 2 * h.ttlMs + 500;
  h.redisServer.process!.kill('SIGSTOP');
  await sleep(pauseMs);
  h.redisServer.process!.kill('SIGCONT');
  const steady = await h.waitSteady(60_000);
  const to = await intervalsPass(h, 2);
  return {
    fault: `Redis frozen ${pauseMs} ms (> TTL)`,
    windows: [{ what: 'Redis freeze', from, to, allowed: none }],
    figures: { 'pause ms': pauseMs, 'steady again ms': steady },
  };
};

/** The Mongo server down for four intervals: the nodes buffer, then write everything. */
export const mongoOutage: Fault = async (h) => {
  const from = h.checkedTo;
  await h.mongoServer.down();
  const downMs = 4 * h.intervalMs;
  let queued = 0;
  const until0 = Date.now() + downMs;
  while (Date.now() < until0) {
    await sleep(250);
    const cards = await h.cards();
    queued = Math.max(
      queued,
      cards.reduce((sum, c) => sum + (c.ok ? Number(c.card.stats.writeQueue ?? 0) : 0), 0),
    );
  }
  await h.mongoServer.up();
  const drained = await until(
    async () => !(await h.writeBacklog()),
    120_000,
    'the samples buffered in the outage written',
  );
  const to = await intervalsPass(h, 2);
  return {
    fault: `Mongo server down ${downMs} ms`,
    windows: [{ what: 'Mongo outage', from, to, allowed: none }],
    figures: { 'down ms': downMs, 'most samples buffered': queued, 'drained after restart ms': drained },
  };
};

/**
 * The mock answering 5xx, then 429, hanging, malformed and wrong-typed bodies, two intervals each:
 * intervals whose retries all failed may be missed while it lasts, none after.
 */
export const mockFaults: Fault = async (h) => {
  const from = h.checkedTo;
  const phases = [
    { errorRate: 0.5 },
    { rateLimitRate: 0.5, retryAfterS: 1 },
    { hangRate: 0.2 },
    { malformedRate: 0.3, badFieldRate: 0.3 },
  ];
  const off = { errorRate: 0, rateLimitRate: 0, hangRate: 0, malformedRate: 0, badFieldRate: 0 };
  for (const phase of phases) {
    h.setMockFaults({ ...off, ...phase });
    await sleep(2 * h.intervalMs);
  }
  h.setMockFaults(off);
  // answers to requests sent before the switch may still fail until they time out
  const clean = intervalStart(Date.now() + Number(h.cluster.env.REQUEST_TIMEOUT_MS), h.intervalMs) + h.intervalMs;
  const to = await intervalsPass(h, 3);
  return {
    fault: 'mock 5xx, 429, hanging, malformed',
    windows: whileAndAfter('mock faults', from, clean, to),
    figures: { 'fault ms': phases.length * 2 * h.intervalMs },
  };
};

/** The mock stopped (connections dropped) for one interval and started again on its port. */
export const mockRestart: Fault = async (h) => {
  const from = h.checkedTo;
  await h.restartMock(h.intervalMs);
  const clean = h.intervalNow() + h.intervalMs;
  const to = await intervalsPass(h, 3);
  return {
    fault: 'mock restarted',
    windows: whileAndAfter('mock down', from, clean, to),
    figures: { 'down ms': h.intervalMs },
  };
};

/**
 * A node whose clock is `skewMs` off joins, takes pks from a node stopped gracefully, and leaves
 * again: interval stamping must make neither duplicates nor gaps.
 */
export function clockSkew(skewMs: number): Fault {
  const fault: Fault = async (h) => {
    const from = h.checkedTo;
    const id = `skewed${skewMs > 0 ? 'plus' : 'minus'}${Math.abs(skewMs)}`;
    const figures: Record<string, number | string> = { 'skew ms': skewMs };
    const codes: Array<number | null> = [];
    h.spawn(id, { CLOCK_SKEW_MS: String(skewMs) });
    figures['join ms'] = await h.waitSteady(60_000);
    await intervalsPass(h, 2);
    const other = h.running().find((x) => x !== id)!;
    codes.push(await h.stop(other));
    await h.waitSteady(30_000);
    await intervalsPass(h, 2);
    h.spawn(other);
    await h.waitSteady(60_000);
    await intervalsPass(h, 1);
    codes.push(await h.stop(id));
    await h.waitSteady(30_000);
    const to = await intervalsPass(h, 2);
    return {
      fault: `node clock ${skewMs > 0 ? '+' : ''}${skewMs} ms`,
      windows: [{ what: 'skewed node', from, to, allowed: none }],
      figures,
      problems: codes.some((c) => c !== 0) ? [`exit codes ${codes.join(', ')}`] : [],
    };
  };
  return Object.defineProperty(fault, 'name', { value: `clockSkew(${skewMs})` });
}

/**
 * Member keys holding garbage (not JSON, an old card format, another id) and absurd cards (weights
 * the ring refuses or cannot afford) in the running cluster.
 */
export const garbageMembers: Fault = async (h) => {
  const from = h.checkedTo;
  const { redis, svc } = h.cluster;
  const card = (id: string, weight: number): string =>
    JSON.stringify({
      format: 1,
      id,
      host: 'h',
      pid: 1,
      version: '0.0.1',
      weight,
      state: 'active',
      started: 0,
      heartbeat: Date.now(),
      ttlMs: 60_000,
      view: 'x',
      stats: {},
    });
  const garbage: Record<string, string> = {
    junk: '{not json',
    'old-card': JSON.stringify({ id: 'old-card', host: 'h', pid: 1, state: 'active', heartbeat: Date.now() }),
    'other-id': card('someone-else', 1),
    'weight-tiny': card('weight-tiny', 0.05),
    'weight-huge': card('weight-huge', 1e6),
  };
  for (const [id, value] of Object.entries(garbage)) await redis.set(nodeKey(svc.cluster, id), value);
  await redis.sadd(memberIndexKey(svc.cluster), ...Object.keys(garbage));
  await intervalsPass(h, 3);
  const problems: string[] = [];
  await h.waitSteady(10_000).catch((err: Error) => problems.push(`ring changed by garbage: ${err.message}`));
  const status = await runCli(['status', '--json'], h.cluster.env);
  const unreadable =
    status.code === 0 ? (JSON.parse(status.stdout) as { summary: { unreadable: string[] } }).summary.unreadable : [];
  if (status.code !== 0 || Object.keys(garbage).some((id) => !unreadable.includes(id)))
    problems.push(`status does not show the garbage as unreadable (exit ${status.code}: ${unreadable.join(', ')})`);
  for (const id of Object.keys(garbage)) await redis.del(nodeKey(svc.cluster, id));
  const to = await intervalsPass(h, 1);
  return {
    fault: 'garbage member keys',
    windows: [{ what: 'garbage member keys', from, to, allowed: none }],
    figures: { 'garbage keys': Object.keys(garbage).length },
    problems,
  };
};

/** Unknown commands and flags and bad settings against the running cluster: one line, exit 2. */
export const badInput: Fault = async (h) => {
  const from = h.checkedTo;
  const env = h.cluster.env;
  const cases: Array<{ args: string[]; env: Record<string, string>; says: RegExp }> = [
    { args: ['frobnicate'], env, says: /unknown command/ },
    { args: ['start', '--no-such-flag'], env, says: /unknown option/ },
    {
      args: ['start'],
      env: { ...env, INTERVAL_MS: 'soon', NODE_ID: 'bad-config' },
      says: /INTERVAL_MS="soon" is not valid/,
    },
    {
      args: ['start'],
      env: { ...env, HEARTBEAT_TTL_MS: '-1', NODE_ID: 'bad-config' },
      says: /HEARTBEAT_TTL_MS="-1" is not valid/,
    },
    { args: ['status'], env: { ...env, REDIS_URL: 'localhost:6379' }, says: /REDIS_URL="localhost:6379" is not valid/ },
  ];
  const problems: string[] = [];
  for (const c of cases) {
    const r = await runCli(c.args, c.env);
    const lines = r.stderr.trim().split('\n');
    if (r.code !== 2 || lines.length !== 1 || !c.says.test(lines[0]))
      problems.push(`influencer-node ${c.args.join(' ')}: exit ${r.code}, stderr ${JSON.stringify(r.stderr.trim())}`);
  }
  const to = await intervalsPass(h, 1);
  await h.waitSteady(10_000).catch((err: Error) => problems.push(err.message));
  return {
    fault: 'bad CLI input and config',
    windows: [{ what: 'bad input', from, to, allowed: none }],
    figures: { 'commands refused': cases.length - problems.length },
    problems,
  };
};

/** The period length the chaos cluster runs with (`BUCKET_MS`), and the start of the one in progress. */
export function periods(h: Chaos): { bucketMs: number; now: number } {
  const bucketMs = Number(h.cluster.env.BUCKET_MS);
  return { bucketMs, now: Math.floor(Date.now() / bucketMs) * bucketMs };
}

/** Waits until the middle of a period (the next one if this one is past its middle); resolves to its start. */
async function midPeriod(h: Chaos): Promise<number> {
  const { bucketMs, now } = periods(h);
  const start = Date.now() - now < bucketMs / 2 ? now : now + bucketMs;
  await sleep(start + bucketMs / 2 - Date.now());
  return start;
}

/** Waits until every slice of `period` is closed; resolves to how long after its end that was. */
/** Waits until every slice's totals are ready (a rebuild has ended); resolves to how long that took, in ms. */
export function totalsReady(h: Chaos, timeoutMs = 120_000): Promise<number> {
  const { redis, svc, totals } = h.cluster;
  return until(
    async () => (await totalsState(redis, svc.cluster, totals.slices).catch(() => 'missing')) === 'ready',
    timeoutMs,
    'totals rebuilt',
  );
}

export async function periodClosed(h: Chaos, period: number): Promise<number> {
  const key = clusterKeys(h.cluster.svc.cluster).closed;
  await until(
    async () => Number((await h.cluster.redis.get(key).catch(() => null)) ?? -1) >= period,
    180_000,
    `period ${new Date(period).toISOString()} closed`,
  );
  return Date.now() - (period + periods(h).bucketMs);
}

/** A node SIGKILLed in the middle of a period: the period's buckets hold every point its peers and it stored. */
export const killMidPeriod: Fault = async (h) => {
  const period = await midPeriod(h);
  const run = await sigkill(h);
  const closed = await periodClosed(h, period);
  return {
    ...run,
    fault: `SIGKILL mid-period, ${run.fault.replace(/^SIGKILL of /, '')}`,
    figures: { ...run.figures, 'its period closed ms after its end': closed },
  };
};

/** A node stopped gracefully in the middle of a period and started again: its pks are handed over and back. */
export const handoverMidPeriod: Fault = async (h) => {
  const from = h.checkedTo;
  const period = await midPeriod(h);
  const id = pick(h.running());
  const code = await h.stop(id);
  await h.waitSteady(30_000);
  h.spawn(id);
  const rejoin = await h.waitSteady(60_000);
  const closed = await periodClosed(h, period);
  const to = await intervalsPass(h, 1);
  return {
    fault: `handover of ${id}'s pks mid-period and back`,
    windows: [{ what: 'handover mid-period', from, to, allowed: none }],
    figures: { 'rejoin ms': rejoin, 'its period closed ms after its end': closed },
    problems: code === 0 ? [] : [`stop exit code ${code}`],
  };
};

/** MongoDB down from just before a period ends until after its close is due: the close waits, nothing is lost. */
export const mongoDownAtClose: Fault = async (h) => {
  const from = h.checkedTo;
  const { bucketMs, now } = periods(h);
  const period = now;
  const graceMs = closeGraceMs({
    flushMaxAgeMs: Number(h.cluster.env.FLUSH_MAX_AGE_MS),
    requestTimeoutMs: Number(h.cluster.env.REQUEST_TIMEOUT_MS),
  });
  await sleep(period + bucketMs - h.intervalMs - Date.now());
  await h.mongoServer.down();
  const upAt = period + bucketMs + h.intervalMs + graceMs + 3000;
  await sleep(upAt - Date.now());
  const wasClosed = Number(await h.cluster.redis.get(clusterKeys(h.cluster.svc.cluster).closed)) >= period;
  await h.mongoServer.up();
  const closed = await periodClosed(h, period);
  await until(async () => !(await h.writeBacklog()), 120_000, 'the samples buffered in the outage written');
  const to = await intervalsPass(h, 2);
  return {
    fault: 'Mongo down while a period closes',
    windows: [{ what: 'Mongo down at a close', from, to, allowed: none }],
    figures: { 'down ms': Date.now() - (period + bucketMs - h.intervalMs), 'period closed ms after its end': closed },
    problems: wasClosed ? ['the period was marked closed while MongoDB was down'] : [],
  };
};

/**
 * Redis back from an older snapshot: its keys as they were two intervals ago (DUMP, then RESTORE
 * into a restarted server): stale totals and buffers under another run id, rebuilt, not trusted.
 */
export const redisOlderSnapshot: Fault = async (h) => {
  const from = h.checkedTo;
  const { redis, svc } = h.cluster;
  const keys = await redis.keys(`${svc.cluster}:*`);
  const pipeline = redis.pipeline();
  for (const k of keys) pipeline.dumpBuffer(k).pttl(k);
  const replies = (await pipeline.exec()) ?? [];
  const snapshot = keys.map((k, i) => ({
    k,
    dump: replies[2 * i]?.[1] as Buffer | null,
    ttl: Number(replies[2 * i + 1]?.[1]),
  }));
  await intervalsPass(h, 2);
  await h.redisServer.restart();
  const restore = redis.pipeline();
  for (const s of snapshot) if (s.dump) restore.restore(s.k, s.ttl > 0 ? s.ttl : 0, s.dump, 'REPLACE');
  await until(
    async () => {
      try {
        await restore.exec();
        return true;
      } catch {
        return false;
      }
    },
    30_000,
    'the snapshot restored',
  );
  const steady = await h.waitSteady(60_000);
  const rebuilt = await until(
    async () => totalsTrusted(redis, svc.cluster, h.cluster.totals.slices).catch(() => false),
    120_000,
    'totals rebuilt',
  );
  const to = await intervalsPass(h, 2);
  return {
    fault: 'Redis restarted from an older snapshot',
    windows: [{ what: 'older Redis snapshot', from, to, allowed: none }],
    figures: { 'keys restored': snapshot.length, 'steady ms': steady, 'totals trusted again ms': rebuilt },
  };
};

/**
 * Redis evicting keys (maxmemory under its use, `allkeys-random`) for two intervals: member cards,
 * totals and buffers vanish; the eviction is seen, the totals rebuilt, the buffers refilled from the log.
 */
export const redisEviction: Fault = async (h) => {
  const from = h.checkedTo;
  const { redis, svc } = h.cluster;
  const used = Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1] ?? 0);
  await redis.config('SET', 'maxmemory-policy', 'allkeys-random');
  await redis.config('SET', 'maxmemory', String(Math.floor(used * 0.7)));
  await sleep(2 * h.intervalMs);
  const evicted = Number(/^evicted_keys:(\d+)/m.exec(await redis.info('stats'))?.[1] ?? 0);
  await redis.config('SET', 'maxmemory', '0');
  await redis.config('SET', 'maxmemory-policy', 'noeviction');
  const clean = h.intervalNow() + 2 * h.intervalMs;
  const steady = await h.waitSteady(60_000);
  const rebuilt = await until(
    async () => totalsTrusted(redis, svc.cluster, h.cluster.totals.slices).catch(() => false),
    120_000,
    'totals rebuilt',
  );
  const to = Math.max(await intervalsPass(h, 2), clean + h.intervalMs);
  return {
    fault: 'Redis evicting keys',
    windows: whileAndAfter('eviction', from, clean, to),
    figures: { 'keys evicted': evicted, 'steady ms': steady, 'totals trusted again ms': rebuilt },
    problems: evicted > 0 ? [] : ['nothing was evicted: the fault did not happen'],
  };
};

/** Redis down while a node stops gracefully: the stop still ends (exit 0, no hang), its samples are logged. */
export const redisDownDuringStop: Fault = async (h) => {
  const from = h.checkedTo;
  const owners = await h.owners();
  const id = pick(h.running());
  await h.redisServer.down();
  const t0 = Date.now();
  const code = await h.stop(id);
  const stopMs = Date.now() - t0;
  await h.redisServer.up();
  const clean = h.intervalNow() + h.intervalMs;
  h.spawn(id);
  const steady = await h.waitSteady(60_000);
  await until(
    async () =>
      (await totalsState(h.cluster.redis, h.cluster.svc.cluster, h.cluster.totals.slices).catch(() => 'missing')) ===
      'ready',
    120_000,
    'totals ready',
  );
  const to = Math.max(await intervalsPass(h, 2), clean + h.intervalMs);
  return {
    fault: `Redis down while ${id} stops`,
    windows: [
      {
        what: 'Redis down during a stop: while',
        from,
        to: clean,
        allowed: (pk) => (owners.get(pk) === id ? Infinity : 0),
      },
      { what: 'Redis down during a stop: after', from: clean, to, allowed: none },
    ],
    figures: { 'stop ms': stopMs, 'steady again ms': steady },
    problems: code === 0 ? [] : [`stop exit code ${code}`],
  };
};

/** MongoDB down while the totals are rebuilt (Redis restarted empty just before): the rebuild waits and finishes. */
export const mongoDownDuringRebuild: Fault = async (h) => {
  const from = h.checkedTo;
  await h.redisServer.restart();
  await until(
    async () =>
      (await totalsState(h.cluster.redis, h.cluster.svc.cluster, h.cluster.totals.slices).catch(() => 'missing')) ===
      'rebuilding',
    60_000,
    'a rebuild started',
  );
  await h.mongoServer.down();
  await sleep(4 * h.intervalMs);
  await h.mongoServer.up();
  const rebuilt = await totalsReady(h, 180_000);
  await h.waitSteady(60_000);
  const to = await intervalsPass(h, 2);
  return {
    fault: 'Mongo down during a totals rebuild',
    windows: [{ what: 'Mongo down during a rebuild', from, to, allowed: none }],
    figures: { 'rebuilt ms after Mongo came back': rebuilt },
  };
};
