// A node whose clock is 3 s ahead, then one 3 s behind, joining and taking over pks and leaving
// again. A gained pk's previous interval is caught up when its slot passed less than
// min(INTERVAL_MS, 5 s) ago, which covers a skew of a few seconds plus the ring's lag; the
// interval here is 6 s so that 3 s is "a few seconds" as it is at the default 60 s.
import t from 'tap';
import { clockSkew } from './faults.js';
import { suiteOptions } from './harness.js';
import { chaosSuite } from './suite.js';

await chaosSuite(t, 'clock', [clockSkew(3000), clockSkew(-3000)], { ...suiteOptions(['a', 'b']), intervalMs: 6000 });
