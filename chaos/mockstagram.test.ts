// The mock answering 5xx, 429, hanging and malformed bodies for a while, then restarted: intervals
// may be missed while it misbehaves, none once it is back.
import t from 'tap';
import { mockFaults, mockRestart } from './faults.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'mockstagram', [mockFaults, mockRestart]);
