// The storage layout under faults: a node killed or handed over in the middle of a period (its
// buckets hold every point), MongoDB down while a period closes, Redis back from an older snapshot
// or evicting keys (both rebuilt, never trusted), Redis down during a graceful stop and MongoDB
// down during a rebuild (two faults at once).
import t from 'tap';
import {
  handoverMidPeriod,
  killMidPeriod,
  mongoDownAtClose,
  mongoDownDuringRebuild,
  redisDownDuringStop,
  redisEviction,
  redisOlderSnapshot,
} from './faults.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'storage', [
  killMidPeriod,
  handoverMidPeriod,
  mongoDownAtClose,
  redisOlderSnapshot,
  redisEviction,
  redisDownDuringStop,
  mongoDownDuringRebuild,
]);
