// Redis restarted with its data gone (members announce themselves again, the totals are rebuilt
// from MongoDB) and Redis frozen with SIGSTOP for longer than the heartbeat TTL.
import t from 'tap';
import { redisFreeze, redisRestart } from './faults.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'redis', [redisRestart, redisFreeze]);
