// A write batch's token is its log document's `_id` and what the period's reconcile skips once
// applied: two batches with one token would lose one of them as "already stored". Tokens name the
// node, its process and a counter, so no two batches share one, whatever the random source does.
import t from 'tap';
import * as crypto from 'node:crypto';
import type { LogWriter as LogWriterClass } from '../lib/storage/write/log-writer.js';
import { sample, storageKit, MIN } from './helpers/storage.js';

const T0 = 1_764_576_000_000;
const BUCKET = 10 * MIN;

t.test('two nodes writing at once never share a token, even if the random source repeats itself', async (t) => {
  // the random source of every batch forced to one value: what a collision of random tokens looks like
  const { LogWriter } = await t.mockImport<{ LogWriter: typeof LogWriterClass }>('../lib/storage/write/log-writer.js', {
    'node:crypto': { ...crypto, randomInt: () => 12_345, randomBytes: () => Buffer.alloc(16, 7) },
  });
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  const a = new LogWriter(k.db, k.totals, k.layout, 'node-a');
  const b = new LogWriter(k.db, k.totals, k.layout, 'node-b');
  const fromA = [sample(1_000_001, T0, 100), sample(1_000_001, T0 + MIN, 110)];
  const fromB = [sample(1_000_002, T0, 200), sample(1_000_002, T0 + MIN, 220)];
  // node a logs its batch and dies before applying it; node b stores its batch whole
  const batchA = a.batch(fromA);
  await a.log(batchA);
  const batchB = b.batch(fromB);
  await b.log(batchB);
  await b.apply(batchB);
  t.not(batchA.token, batchB.token, 'the two batches have different tokens');
  const again = a.batch(fromA);
  t.not(again.token, batchA.token, 'and a node never repeats its own');

  k.clock.now = T0 + BUCKET + MIN;
  t.equal(await k.closer.closeDue(), 'closed');
  for (const [pk, samples] of [
    [1_000_001, fromA],
    [1_000_002, fromB],
  ] as const) {
    const points = await k.points(pk);
    t.same(
      points.map((p) => [p.at, p.f]),
      samples.map((s) => [s.at, s.followerCount]),
      `pk ${pk}: every sample is a point`,
    );
    t.match(
      await k.totals.read(pk),
      { samples: samples.length, followerSum: samples.reduce((s, x) => s + x.followerCount, 0) },
      `pk ${pk}: counted once`,
    );
  }
});
