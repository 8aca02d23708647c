// Nodes killed and restarted: SIGKILL of a random node, started again with its id (twice), and a
// graceful rolling restart of every node in turn.
import t from 'tap';
import { rollingRestart, sigkill } from './faults.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'nodes', [sigkill, sigkill, rollingRestart]);
