// Which Redis key layout a cluster's data is in, and the switch from the previous version's (one
// hash per pk and cluster-wide sorted sets) to this one's (per slice): DESIGN.md one folder up,
// "Upgrading a cluster that ran the previous key layout".
import type { ClusterLock } from '../../cluster/locks.js';
import { liveCards } from '../../cluster/member-view.js';
import type { Logger } from '../../shared/log.js';
import { clusterKeys, KEYSPACE_LAYOUT, legacyKeys } from '../../shared/keys.js';
import { scanKeys, unlinkKeys, type RedisClient } from '../../shared/redis.js';

/** 'current': this version's keys are in force; 'previous': members of the previous version write theirs. */
export type KeyspaceMode = 'current' | 'previous';

/**
 * While the previous layout is in force, a node of this version logs its samples and leaves them to
 * the previous version's period close, which applies every log document not applied; it closes no
 * period and rebuilds nothing. Once no live member of the previous version is left, one node
 * deletes the previous layout's data keys and sets the version: the slices are then rebuilt from
 * MongoDB like after a Redis loss.
 */
export class Keyspace {
  private mode: KeyspaceMode = 'previous';

  constructor(
    private readonly redis: RedisClient,
    private readonly cluster: string,
    private readonly log: Logger,
  ) {}

  /** Whether this version's keys are in force (as of the last check). */
  get current(): boolean {
    return this.mode === 'current';
  }

  /**
   * Reads the layout in force. A cluster with no data of the previous layout and no live member of
   * the previous version (a new one, or one whose previous nodes have all gone) takes this one.
   */
  async check(): Promise<KeyspaceMode> {
    if (this.mode === 'current') return this.mode;
    const keys = clusterKeys(this.cluster);
    if (Number(await this.redis.get(keys.keyspace)) === KEYSPACE_LAYOUT) return (this.mode = 'current');
    const legacy = (await this.redis.exists(legacyKeys(this.cluster).since)) === 1;
    if (!legacy && (await this.previousMembers()) === 0) {
      await this.redis.set(keys.keyspace, String(KEYSPACE_LAYOUT), 'NX');
      return (this.mode = 'current');
    }
    return this.mode;
  }

  /**
   * When the previous layout's data is there and its last member has gone: deletes that data (the
   * `closed` mark, which both layouts keep alike, stays) and sets this layout (lock `keyspace`).
   * Resolves to whether this layout is in force now.
   */
  async switchWhenDue(lock: ClusterLock): Promise<boolean> {
    if ((await this.check()) === 'current') return true;
    if ((await this.previousMembers()) > 0) return false;
    const r = await lock.runExclusive('keyspace', async () => {
      if ((await this.check()) === 'current') return;
      const legacy = legacyKeys(this.cluster);
      let deleted = 0;
      for await (const batch of scanKeys(this.redis, `${this.cluster}:*`))
        deleted += await unlinkKeys(
          this.redis,
          batch.filter((k) => legacy.isDataKey(k)),
        );
      await this.redis.set(clusterKeys(this.cluster).keyspace, String(KEYSPACE_LAYOUT));
      this.mode = 'current';
      this.log.warn(
        { deleted },
        "the previous version's nodes have all gone: its Redis keys deleted, the totals are rebuilt into this version's",
      );
    });
    if (r.ran) return this.current;
    return (await this.check()) === 'current';
  }

  /** Live members (Redis has not expired their keys) whose card does not say they write this layout. */
  private async previousMembers(): Promise<number> {
    return (await liveCards(this.redis, this.cluster)).filter((c) => c.keyspace !== KEYSPACE_LAYOUT).length;
  }
}
