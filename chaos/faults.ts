// The faults, each injected into a running cluster and recovered from; each returns the windows of
// intervals to check with the bound DESIGN.md sets for it, and what it measured. Shared by the
// chaos suite (one tap test per fault) and the soak (random faults for a given time).
import { runCli } from '../test/helpers/cli.js';
import { intervalStart, sleep, until } from '../test/helpers/cluster.js';
import { totalsState } from '../lib/rebuild.js';
import { nodeKey } from '../lib/card.js';
import { memberIndexKey } from '../lib/membership.js';
import type { Chaos } from './harness.js';
import { none, unbounded, type FaultRun, type Window } from './invariants.js';

export type Fault = (h: Chaos) => Promise<FaultRun>;

/** Waits for `n` more whole intervals; resolves to the start of the interval then in progress. */
async function intervalsPass(h: Chaos, n: number): Promise<number> {
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

function pick<T>(items: T[]): T {
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
  const problems = missed < owned * (slept - 1) || missed > owned * (slept + 2)
    ? [`node ${id} counted ${missed} missed pk-intervals for ${owned} pks paused ${paused} ms: fetched late, or counted twice`]
    : [];
  const untilTakeover = Math.ceil(takeover / h.intervalMs) + 1;
  return {
    fault: `node ${id} paused ${pauseMs} ms (> TTL)`,
    windows: [{ what: 'pause to rejoin', from, to, allowed: (pk) => (owners.get(pk) === id ? untilTakeover : 0) }],
    figures: {
      'pks of the paused node': owned, 'paused ms': paused, 'takeover ms': takeover, 'rejoin ms': rejoin, 'missed it counted': missed,
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
  return { fault: 'graceful rolling restart', windows: [{ what: 'rolling restart', from, to, allowed: none }], figures, problems: codes.some((c) => c !== 0) ? [`exit codes ${codes.join(', ')}`] : [] };
};

/** Redis killed and started empty: members announce themselves again, the totals are rebuilt. */
export const redisRestart: Fault = async (h) => {
  const from = h.checkedTo;
  await h.redisServer.restart();
  const members = await h.waitSteady(60_000);
  const rebuilt = await until(async () => (await totalsState(h.cluster.redis, h.cluster.svc.cluster).catch(() => 'missing')) === 'ready', 120_000, 'totals rebuilt');
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
    queued = Math.max(queued, cards.reduce((sum, c) => sum + (c.ok ? Number(c.card.stats.writeQueue ?? 0) : 0), 0));
  }
  await h.mongoServer.up();
  const drained = await until(async () => !(await h.writeBacklog()), 120_000, 'the samples buffered in the outage written');
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
  const card = (id: string, weight: number): string => JSON.stringify({
    format: 1, id, host: 'h', pid: 1, version: '0.0.1', weight, state: 'active',
    started: 0, heartbeat: Date.now(), ttlMs: 60_000, view: 'x', stats: {},
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
  const unreadable = status.code === 0 ? (JSON.parse(status.stdout) as { summary: { unreadable: string[] } }).summary.unreadable : [];
  if (status.code !== 0 || Object.keys(garbage).some((id) => !unreadable.includes(id))) problems.push(`status does not show the garbage as unreadable (exit ${status.code}: ${unreadable.join(', ')})`);
  await redis.del(...Object.keys(garbage).map((id) => nodeKey(svc.cluster, id)));
  const to = await intervalsPass(h, 1);
  return { fault: 'garbage member keys', windows: [{ what: 'garbage member keys', from, to, allowed: none }], figures: { 'garbage keys': Object.keys(garbage).length }, problems };
};

/** Unknown commands and flags and bad settings against the running cluster: one line, exit 2. */
export const badInput: Fault = async (h) => {
  const from = h.checkedTo;
  const env = h.cluster.env;
  const cases: Array<{ args: string[]; env: Record<string, string>; says: RegExp }> = [
    { args: ['frobnicate'], env, says: /unknown command/ },
    { args: ['start', '--no-such-flag'], env, says: /unknown option/ },
    { args: ['start'], env: { ...env, INTERVAL_MS: 'soon', NODE_ID: 'bad-config' }, says: /INTERVAL_MS="soon" is not valid/ },
    { args: ['start'], env: { ...env, HEARTBEAT_TTL_MS: '-1', NODE_ID: 'bad-config' }, says: /HEARTBEAT_TTL_MS="-1" is not valid/ },
    { args: ['status'], env: { ...env, REDIS_URL: 'localhost:6379' }, says: /REDIS_URL="localhost:6379" is not valid/ },
  ];
  const problems: string[] = [];
  for (const c of cases) {
    const r = await runCli(c.args, c.env);
    const lines = r.stderr.trim().split('\n');
    if (r.code !== 2 || lines.length !== 1 || !c.says.test(lines[0])) problems.push(`influencer-node ${c.args.join(' ')}: exit ${r.code}, stderr ${JSON.stringify(r.stderr.trim())}`);
  }
  const to = await intervalsPass(h, 1);
  await h.waitSteady(10_000).catch((err: Error) => problems.push(err.message));
  return { fault: 'bad CLI input and config', windows: [{ what: 'bad input', from, to, allowed: none }], figures: { 'commands refused': cases.length - problems.length }, problems };
};
