// Whether a slice's running totals in Redis can be trusted, are being rebuilt, or are gone: what the
// read API reports, a period's close checks per slice, and the rebuild decides on.
import { serverOf, servers, type RedisClient } from '../../shared/redis.js';
import { SLICE_MARKS, sliceKeys } from '../../shared/keys.js';

export type TotalsState = 'ready' | 'rebuilding' | 'missing';

/**
 * Which Redis server holds `key` (the slice's master on a cluster), and how many keys it has
 * evicted: the run id changes at every restart (a restored snapshot may be older than the totals)
 * and with a failover to a replica, and an eviction under an `allkeys-*` or `volatile-*` policy
 * removes keys without a trace. Either makes the totals on it untrustworthy.
 */
export async function redisIdentity(redis: RedisClient, key: string): Promise<string> {
  return identity(await serverOf(redis, key).info());
}

function identity(info: string): string {
  const runId = /^run_id:(\w+)/m.exec(info)?.[1] ?? '';
  const evicted = /^evicted_keys:(\d+)/m.exec(info)?.[1] ?? '0';
  return `${runId}:${evicted}`;
}

/** The identity (`run id:evicted keys`) of every server holding keys now: one Redis, or each master. */
export async function masterIdentities(redis: RedisClient): Promise<Set<string>> {
  return new Set(await Promise.all(servers(redis).map(async (s) => identity(await s.info()))));
}

/** One slice's state from its marks: a rebuild in progress, counting, or gone. */
export async function sliceState(
  redis: RedisClient,
  cluster: string,
  slices: number,
  slice: number,
): Promise<TotalsState> {
  const k = sliceKeys(cluster, slices, slice);
  const [since, cutoff] = await redis.hmget(k.marks, SLICE_MARKS.since, SLICE_MARKS.rebuildCutoff);
  if (cutoff !== null) return 'rebuilding';
  return since === null ? 'missing' : 'ready';
}

/**
 * Ready, and built on a server that still holds keys with none evicted since: what closing a slice
 * needs. A slice built on a master that still serves with nothing evicted, now on another (its slot
 * was moved: MIGRATE carries the keys whole), adopts its new master instead of being rebuilt; one
 * whose master restarted, failed over to a replica or evicted keys is not trusted.
 */
export async function sliceTrusted(
  redis: RedisClient,
  cluster: string,
  slices: number,
  slice: number,
  masters?: Set<string>,
): Promise<boolean> {
  const k = sliceKeys(cluster, slices, slice);
  const [state, built] = await Promise.all([
    sliceState(redis, cluster, slices, slice),
    redis.hget(k.marks, SLICE_MARKS.builtOn),
  ]);
  if (state !== 'ready') return false;
  const current = await redisIdentity(redis, k.marks);
  if (built === current) return true;
  // marks that never named their Redis adopt it, as do totals that moved from a master still serving
  if (built === null || (masters ?? (await masterIdentities(redis))).has(built)) {
    await redis.hset(k.marks, SLICE_MARKS.builtOn, current);
    return true;
  }
  return false;
}

/** The cluster's totals: rebuilding if any slice is, missing if any slice is gone, else ready. */
export async function totalsState(redis: RedisClient, cluster: string, slices: number): Promise<TotalsState> {
  const states = await Promise.all(
    Array.from({ length: slices }, (_, slice) => sliceState(redis, cluster, slices, slice)),
  );
  if (states.includes('rebuilding')) return 'rebuilding';
  return states.includes('missing') ? 'missing' : 'ready';
}

/** Every slice trusted: what a check after a restart or an eviction waits for. */
export async function totalsTrusted(redis: RedisClient, cluster: string, slices: number): Promise<boolean> {
  const masters = await masterIdentities(redis);
  for (let slice = 0; slice < slices; slice++)
    if (!(await sliceTrusted(redis, cluster, slices, slice, masters))) return false;
  return true;
}
