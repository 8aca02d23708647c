// The storage layer's edges: a period closed again after Redis lost its data and MongoDB its closed
// mark (nothing counted twice), a log document no node can apply (quarantined, every period still
// closes) and a node frozen for longer than a period (no mark moves back, no key of a period left
// without a bound on its life).
import t from 'tap';
import { closedTwiceAfterRedisLoss, nodePauseOverPeriod, poisonLogDocument } from './storage-faults.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'storage-edges', [closedTwiceAfterRedisLoss, poisonLogDocument, nodePauseOverPeriod]);
