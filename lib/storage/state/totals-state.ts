// Whether the running totals in Redis can be trusted, are being rebuilt, or are gone: what the read
// API reports, a period's close checks, and the rebuild decides on.
import type { Redis } from 'ioredis';
import { clusterKeys } from '../../shared/keys.js';

export type TotalsState = 'ready' | 'rebuilding' | 'missing';

/**
 * Which Redis the totals live on, and how many keys it has evicted: the run id changes at every
 * restart (a restored snapshot may be older than the totals), and an eviction under an `allkeys-*`
 * or `volatile-*` policy removes keys without a trace. Either makes the totals untrustworthy.
 */
export async function redisIdentity(redis: Redis): Promise<string> {
  const info = await redis.info();
  const runId = /^run_id:(\w+)/m.exec(info)?.[1] ?? '';
  const evicted = /^evicted_keys:(\d+)/m.exec(info)?.[1] ?? '0';
  return `${runId}:${evicted}`;
}

/** Ready, and on the Redis they were built on, with no key evicted since: what closing a period needs. */
export async function totalsTrusted(redis: Redis, cluster: string): Promise<boolean> {
  const keys = clusterKeys(cluster);
  const [state, built, identity] = await Promise.all([
    totalsState(redis, cluster),
    redis.get(keys.builtOn),
    redisIdentity(redis),
  ]);
  return state === 'ready' && built === identity;
}

/** Whether the running totals in Redis can be trusted, are being rebuilt, or are gone. */
export async function totalsState(redis: Redis, cluster: string): Promise<TotalsState> {
  const keys = clusterKeys(cluster);
  const [since, pending] = await Promise.all([redis.get(keys.since), redis.hget(keys.rebuild, 'T')]);
  if (pending !== null) return 'rebuilding';
  return since === null ? 'missing' : 'ready';
}
