// Whether a slice's running totals in Redis can be trusted, are being rebuilt, or are gone: what the
// read API reports, a period's close checks per slice, and the rebuild decides on.
import { serverOf, type RedisClient } from '../../shared/redis.js';
import { SLICE_MARKS, sliceKeys } from '../../shared/keys.js';

export type TotalsState = 'ready' | 'rebuilding' | 'missing';

/**
 * Which Redis server holds `key` (the slice's master on a cluster), and how many keys it has
 * evicted: the run id changes at every restart (a restored snapshot may be older than the totals)
 * and with a failover to a replica, and an eviction under an `allkeys-*` or `volatile-*` policy
 * removes keys without a trace. Either makes the totals on it untrustworthy.
 */
export async function redisIdentity(redis: RedisClient, key: string): Promise<string> {
  const info = await serverOf(redis, key).info();
  const runId = /^run_id:(\w+)/m.exec(info)?.[1] ?? '';
  const evicted = /^evicted_keys:(\d+)/m.exec(info)?.[1] ?? '0';
  return `${runId}:${evicted}`;
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

/** Ready, and on the Redis it was built on, with no key evicted since: what closing a slice needs. */
export async function sliceTrusted(
  redis: RedisClient,
  cluster: string,
  slices: number,
  slice: number,
): Promise<boolean> {
  const k = sliceKeys(cluster, slices, slice);
  const [state, built, identity] = await Promise.all([
    sliceState(redis, cluster, slices, slice),
    redis.hget(k.marks, SLICE_MARKS.builtOn),
    redisIdentity(redis, k.marks),
  ]);
  return state === 'ready' && built === identity;
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
  for (let slice = 0; slice < slices; slice++) if (!(await sliceTrusted(redis, cluster, slices, slice))) return false;
  return true;
}
