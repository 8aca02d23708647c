// Every Redis key name and hash field of the product, made here and nowhere else.
import calculateSlot from 'cluster-key-slot';

/** What a name in a key (NODE_ID, CLUSTER) or a database name (MONGO_DB) may hold; member cards are held to it too. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

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
 * The keys of a cluster that are not one slice's: membership, locks, and the marks of a period's
 * close. No command or script touches two of them at once, so on a Redis Cluster each may live in
 * its own slot. A slice's keys are `sliceKeys` below; the Lua scripts of lib/lua name theirs in
 * their headers.
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
  /** which key layout the cluster's data is in: '2' (per slice); missing on a cluster of the previous version */
  keyspace: `${cluster}:keyspace`,
  /** tokens of the log documents of period P applied to every slice (the reconcile skips them) */
  applied: (period: number) => `${cluster}:applied:${period}`,
  /** start of the newest period closed in every slice */
  closed: `${cluster}:closed`,
  /** the slices of period P closed so far */
  closedSlices: (period: number) => `${cluster}:closed:${period}`,
  /** set once period P's log has been reconciled with the open buffers */
  reconciled: (period: number) => `${cluster}:reconciled:${period}`,
  /** hash token -> JSON {p, reason, at}: log documents no node can apply, set aside (copies in MongoDB's `quarantine`) */
  quarantined: `${cluster}:quarantined`,
});

/**
 * How long any key of one period lives at most after it is made (open buffers, the slices' sets of
 * pks, applied tokens, close marks): nothing of a period outlives this if its close never happens.
 * A period still open this long after its end is closed from the log after a rebuild (the closer).
 */
export const PERIOD_KEYS_TTL_MS = 7 * 86_400_000;

/** The key layout this version writes: the value of `keyspace`, and what its member cards say. */
export const KEYSPACE_LAYOUT = 2;

/**
 * The previous version's data keys (one hash per pk, cluster-wide sorted sets): read to tell that a
 * cluster still runs it, deleted when it has gone (DESIGN.md, "Upgrading a cluster").
 */
export const legacyKeys = (cluster: string) => ({
  /** its totals' cutoff: present while the previous layout's totals exist */
  since: `${cluster}:totals:since`,
  /** whether `key` is one of its data keys (not membership, locks, nor the marks both layouts share) */
  isDataKey(key: string): boolean {
    if (!key.startsWith(`${cluster}:`)) return false;
    const rest = key.slice(cluster.length + 1);
    if (
      ['rank', 'growth', 'stats', 'closing', 'checkpoints', 'totals:since', 'totals:redis', 'totals:rebuild'].includes(
        rest,
      )
    )
      return true;
    return /^(inf|open|pks|applied|rebuilt|reconciled):/.test(rest);
  },
});

export type ClusterKeys = ReturnType<typeof clusterKeys>;

/** Hash slots of Redis Cluster; a slice's tag lands in its own share of them. */
export const HASH_SLOTS = 16_384;
/** Up to this many slices, each tag is searched so the slices sit in evenly spaced slots. */
const SPREAD_SLICES_MAX = 1024;

const tagCache = new Map<number, string[]>();

/**
 * The hash tag of every slice of a layout with `slices` slices: slice s's tag hashes into the s-th
 * `slices`-th of the hash slots, so masters holding even slot ranges hold even shares of slices.
 * The same for every cluster name (the name stays outside the braces).
 */
export function sliceTags(slices: number): string[] {
  let tags = tagCache.get(slices);
  if (tags) return tags;
  tags = [];
  for (let s = 0; s < slices; s++) {
    if (slices > SPREAD_SLICES_MAX) {
      tags.push(`s${s}`);
      continue;
    }
    const from = Math.floor((s * HASH_SLOTS) / slices);
    const to = Math.floor(((s + 1) * HASH_SLOTS) / slices);
    let n = 0;
    for (;;) {
      const slot = calculateSlot(`s${s}.${n}`);
      if (slot >= from && slot < to) break;
      n++;
    }
    tags.push(`s${s}.${n}`);
  }
  tagCache.set(slices, tags);
  return tags;
}

/** Fields of a slice's marks hash `<cluster>:{<tag>}:m` (lib/lua/apply.lua and the storage jobs). */
export const SLICE_MARKS = {
  /** the totals count every sample with `at` at or after this (epoch ms); missing: not until a rebuild */
  since: 'since',
  /** start of the newest period whose close has begun: its samples are late from then on */
  closing: 'closing',
  /** the period of the slice's newest checkpoint: its samples are in the checkpoint, never counted again */
  checkpoint: 'ckpt',
  /** run id and evicted-key count of the Redis the totals were built on */
  builtOn: 'built',
  /** a rebuild in progress: its cutoff; and the token of the rebuild the totals come from (kept after it) */
  rebuildCutoff: 'rb',
  rebuildOwner: 'owner',
  /** the last pk a rebuild merged, so a resumed one goes on after it */
  rebuildLast: 'rblast',
} as const;

/**
 * The keys of one layout slice: everything one apply call touches, in one hash slot (the tag in
 * braces), so a Redis Cluster runs it on one master. Per pk, `totals` holds 48 packed bytes
 * (lib/storage/format/codec.ts `packTotals`).
 */
export function sliceKeys(cluster: string, slices: number, slice: number) {
  const t = `${cluster}:{${sliceTags(slices)[slice]}}`;
  return {
    /** hash pk -> packed running totals */
    totals: `${t}:st`,
    /** hash pk -> username */
    usernames: `${t}:u`,
    /** hash pk -> the daily is_suspicious answer, '<1|0>:<epoch ms>' */
    suspicious: `${t}:sus`,
    /** hash of the slice's marks (SLICE_MARKS) */
    marks: `${t}:m`,
    /** one pk's points of period P not yet in a bucket: 12-byte records (lib/storage/format/codec.ts) */
    open: (period: number, pk: number) => `${t}:o:${period}:${pk}`,
    /** the slice's pks with an open buffer in period P */
    openPks: (period: number) => `${t}:pks:${period}`,
    /** the slice's ranking snapshot (lib/storage/state/ranking.ts) */
    ranking: `${t}:rank`,
    /** claimed by the node that takes the snapshot of the interval starting at `at` */
    rankingClaim: (at: number) => `${t}:rank:${at}`,
    /** SCAN pattern of every key of the slice */
    pattern: `${t}:*`,
  };
}

export type SliceKeys = ReturnType<typeof sliceKeys>;
