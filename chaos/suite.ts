// One chaos suite file: a cluster, its faults one after the other (a tap subtest each, with every
// invariant checked after it), then every node stopped gracefully.
import type { Test } from 'tap';
import type { Fault } from './faults.js';
import { Chaos, suiteOptions, type ChaosOptions } from './harness.js';
import { verify } from './invariants.js';
import { save } from './report.js';

export async function chaosSuite(
  t: Test,
  suite: string,
  faults: Fault[],
  opts: ChaosOptions = suiteOptions(['a', 'b', 'c']),
): Promise<void> {
  const h = await Chaos.start(t, opts);
  for (const fault of faults) {
    await t.test(fault.name, async (t) => {
      const v = await verify(h, await fault(h));
      save(suite, v);
      t.same(v.violations, [], `${v.fault}: every invariant holds`);
    });
  }
  await t.test('every node stops gracefully', async (t) => {
    const codes = await h.stopAll();
    t.same(
      Object.values(codes),
      Object.keys(codes).map(() => 0),
      JSON.stringify(codes),
    );
    t.same(h.crashed(), [], 'no process died that was not stopped');
  });
}
