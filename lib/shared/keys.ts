// Every Redis key name and hash field of the product, made here and nowhere else.

/** Fields of a pk's hash `<cluster>:inf:<pk>` (written by lib/lua/apply-log.lua and merge-totals.lua). */
export const INFLUENCER_FIELDS = {
  /** samples counted */
  samples: 'n',
  /** sum of their followerCount */
  followerSum: 's',
  followerMin: 'mn',
  followerMax: 'mx',
  /** the latest interval (epoch ms) and its counts */
  latestAt: 'at',
  followerCount: 'f',
  followingCount: 'g',
  username: 'u',
  /** the interval and followerCount the latest replaced (for the growth) */
  previousAt: 'pat',
  previousFollowerCount: 'pf',
  /** the daily is_suspicious answer ('1' / '0') and when it was given */
  suspicious: 'sus',
  suspiciousAt: 'sat',
} as const;

/** A member's card. */
export function nodeKey(cluster: string, id: string): string {
  return `${cluster}:node:${id}`;
}

/** The set of member ids: nodes read it every second instead of scanning every key of Redis. */
export function memberIndexKey(cluster: string): string {
  return `${cluster}:members`;
}

/** The pub/sub channel of membership events. */
export function eventsChannel(cluster: string): string {
  return `${cluster}:events`;
}

/**
 * Every Redis key of a cluster, under its prefix. Per pk, `influencer(pk)` is a hash whose fields
 * are INFLUENCER_FIELDS; the Lua scripts of lib/lua take these keys as KEYS and name them in their
 * headers.
 */
export const clusterKeys = (cluster: string) => ({
  /** a member's card (JSON, with the heartbeat TTL) */
  node: (id: string) => nodeKey(cluster, id),
  /** the set of member ids */
  members: memberIndexKey(cluster),
  /** pub/sub channel of membership events */
  events: eventsChannel(cluster),
  /** a singleton job's lock */
  lock: (job: string) => `${cluster}:lock:${job}`,
  influencer: (pk: number) => `${cluster}:inf:${pk}`,
  rank: `${cluster}:rank`,
  growth: `${cluster}:growth`,
  stats: `${cluster}:stats`,
  /** the running totals count every sample with `at` >= this; older ones come from a rebuild */
  since: `${cluster}:totals:since`,
  /** a rebuild in progress: T (its cutoff), owner (its token) and last (the last pk merged) */
  rebuild: `${cluster}:totals:rebuild`,
  /**
   * run id and evicted-key count of the Redis the totals were built on: another means a restart
   * (maybe from an older snapshot) or an eviction
   */
  builtOn: `${cluster}:totals:redis`,
  /** tokens of the log documents of period P applied to the totals and open buffers */
  applied: (period: number) => `${cluster}:applied:${period}`,
  /** tokens of the log documents of period P a rebuild counted */
  rebuilt: (period: number) => `${cluster}:rebuilt:${period}`,
  /** one pk's points of period P not yet in a bucket: 12-byte records (lib/storage/format/codec.ts) */
  open: (period: number, pk: number) => `${cluster}:open:${period}:${pk}`,
  /** the pks of a slice with an open buffer in period P */
  openPks: (period: number, slice: number) => `${cluster}:pks:${period}:${slice}`,
  /** start of the newest period whose close has begun: its samples are late from then on */
  closing: `${cluster}:closing`,
  /** start of the newest period closed in every slice */
  closed: `${cluster}:closed`,
  /** the slices of period P closed so far */
  closedSlices: (period: number) => `${cluster}:closed:${period}`,
  /** set once period P's log has been reconciled with the open buffers */
  reconciled: (period: number) => `${cluster}:reconciled:${period}`,
  /** hash: slice -> period of its newest checkpoint */
  checkpoints: `${cluster}:checkpoints`,
});

export type ClusterKeys = ReturnType<typeof clusterKeys>;
