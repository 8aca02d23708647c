// The cluster's list of quarantined log documents in Redis (lib/storage/state/quarantine.ts sets a
// document aside and lists it here): what `status`, the read API and the metrics show.
import type { RedisClient } from '../shared/redis.js';
import { clusterKeys } from '../shared/keys.js';

/** What `status` shows of one quarantined document. */
export interface QuarantinedEntry {
  token: string;
  period: number;
  reason: string;
}

/** Lists one quarantined document (its log token, period and why); listing it again changes nothing but `at`. */
export async function listQuarantined(
  redis: RedisClient,
  cluster: string,
  token: string,
  period: number,
  reason: string,
  at: number,
): Promise<void> {
  await redis.hset(clusterKeys(cluster).quarantined, token, JSON.stringify({ p: period, reason, at }));
}

/** The quarantined documents Redis lists, oldest period first; entries it cannot read are shown as such. */
export async function quarantined(redis: RedisClient, cluster: string): Promise<QuarantinedEntry[]> {
  const all = await redis.hgetall(clusterKeys(cluster).quarantined);
  return Object.entries(all)
    .map(([token, raw]) => {
      try {
        const v = JSON.parse(raw) as { p?: unknown; reason?: unknown };
        return { token, period: Number(v.p), reason: String(v.reason ?? '') };
      } catch {
        return { token, period: NaN, reason: 'an entry this version cannot read' };
      }
    })
    .sort((a, b) => a.period - b.period || a.token.localeCompare(b.token));
}
