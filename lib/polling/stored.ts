// Which pks already have a point for an interval, read from the running totals in Redis (the one
// arbiter of what is stored): the poller asks before catching up pks a live member handed it.
import type { Redis } from 'ioredis';
import { clusterKeys, INFLUENCER_FIELDS } from '../shared/keys.js';

/** Answers, for each pk, whether a point of interval `at` is stored. */
export type StoredCheck = (pks: readonly number[], at: number) => Promise<boolean[]>;

/** Pks read per round trip: one pipeline of HMGETs. */
const CHUNK = 5000;

/**
 * A pk's point of `at` is stored when the pk's latest interval is `at`, or the one it replaced is
 * (a point of the next interval came since). Anything else reads as not stored: a repeat fetch
 * costs a request, a skipped one costs the point.
 */
export function storedIn(redis: Redis, cluster: string): StoredCheck {
  const keys = clusterKeys(cluster);
  const { latestAt, previousAt } = INFLUENCER_FIELDS;
  return async (pks, at) => {
    const out: boolean[] = [];
    for (let i = 0; i < pks.length; i += CHUNK) {
      const pipeline = redis.pipeline();
      for (const pk of pks.slice(i, i + CHUNK)) pipeline.hmget(keys.influencer(pk), latestAt, previousAt);
      for (const [err, fields] of (await pipeline.exec()) ?? []) {
        if (err) throw err;
        const [latest, previous] = fields as Array<string | null>;
        out.push(Number(latest) === at || Number(previous) === at);
      }
    }
    return out;
  };
}
