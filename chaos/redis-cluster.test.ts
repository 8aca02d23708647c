// A Redis Cluster of 3 masters with a replica each under the nodes: a node SIGKILLed, a node killed
// and one handed over mid-period, a master SIGKILLed and its replica promoted, half a master's slots
// moved to another while the nodes write; every invariant of the suite after each.
import t from 'tap';
import { handoverMidPeriod, killMidPeriod, sigkill } from './faults.js';
import { redisMasterFailover, redisSlotsMoved } from './cluster-faults.js';
import { suiteOptions } from './harness.js';
import { chaosSuite } from './suite.js';

await chaosSuite(
  t,
  'redis-cluster',
  [sigkill, killMidPeriod, handoverMidPeriod, redisSlotsMoved, redisMasterFailover],
  {
    ...suiteOptions(['a', 'b', 'c']),
    redisCluster: { masters: 3, replicas: 1 },
  },
);
