// What every job of the storage works with: the rebuild of the totals, the close of a period and
// retention are each given one of these, built once by node.ts.
import type { RedisClient } from '../../shared/redis.js';
import type { Db } from 'mongodb';
import type { ClusterLock } from '../../cluster/locks.js';
import type { Logger } from '../../shared/log.js';
import type { StorageLayout } from '../format/layout.js';
import type { Keyspace } from '../state/keyspace.js';

export interface StorageJobDeps {
  redis: RedisClient;
  db: Db;
  /** the cluster's lock: one node at a time runs a singleton job */
  lock: ClusterLock;
  layout: StorageLayout;
  cluster: string;
  log: Logger;
  /** which key layout is in force: while the previous version's, no job of this version writes Redis (current if not given) */
  keyspace?: Keyspace;
}
