// The Mongo server stopped for several intervals, then started again: under the buffer bound
// nothing may be lost.
import t from 'tap';
import { mongoOutage } from './faults.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'mongo', [mongoOutage]);
