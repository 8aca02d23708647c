// What a node's /metrics reads from Redis at scrape time about the cluster's storage: whether the
// running totals can be trusted, how long the oldest ended period has waited to be closed, and how
// many log documents are quarantined.
import type { RedisClient } from '../shared/redis.js';
import { clusterKeys } from '../shared/keys.js';
import type { StorageLayout } from '../storage/format/layout.js';
import { totalsState, type TotalsState } from '../storage/state/totals-state.js';

export interface StorageProbe {
  totals?: TotalsState;
  /** seconds since the end of the oldest period not closed yet; 0 when every ended period is closed */
  closeLagS?: number;
  /** log documents set aside because no node can apply them (lib/storage/state/quarantine.ts) */
  quarantined?: number;
}

/** A scrape waits at most this long for Redis: a frozen Redis must not hang /metrics. */
const PROBE_TIMEOUT_MS = 1000;

/** Reads the probe; an empty one when Redis does not answer in time. */
export async function probeStorage(
  redis: RedisClient,
  cluster: string,
  layout: StorageLayout,
  now: number,
): Promise<StorageProbe> {
  const read = async (): Promise<StorageProbe> => {
    const keys = clusterKeys(cluster);
    const [totals, closed, quarantined] = await Promise.all([
      totalsState(redis, cluster, layout.slices),
      redis.get(keys.closed),
      redis.hlen(keys.quarantined),
    ]);
    return { totals, closeLagS: closeLagS(closed === null ? null : Number(closed), layout, now), quarantined };
  };
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<StorageProbe>((resolve) => {
    timer = setTimeout(() => resolve({}), PROBE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([read().catch(() => ({})), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** `closed`: the start of the newest period closed everywhere (null: none yet, so the layout's first is open). */
export function closeLagS(closed: number | null, layout: StorageLayout, now: number): number {
  const bucket = layout.bucketMs;
  const closedThrough = closed ?? layout.firstPeriod - bucket;
  const newestEnded = Math.floor(now / bucket) * bucket - bucket;
  if (closedThrough >= newestEnded) return 0;
  // the oldest open period starts at closedThrough + bucket and ended one bucket later
  return Math.max(0, (now - (closedThrough + 2 * bucket)) / 1000);
}
