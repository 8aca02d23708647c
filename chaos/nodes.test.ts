// Nodes killed and restarted: SIGKILL of a random node, started again with its id (twice), a node
// frozen longer than the TTL and thawed, and a graceful rolling restart of every node in turn.
import t from 'tap';
import { nodePause, rollingRestart, sigkill } from './faults.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'nodes', [sigkill, sigkill, nodePause, rollingRestart]);
