// A log document no node can apply (a damaged payload, another version's format) must not stop
// the periods after it from closing, nor the totals from being rebuilt: it is set aside (kept in
// MongoDB with its payload, counted, named by `status`) and everything else closes. A document
// larger than one apply call takes is applied in parts; FLUSH_MAX_SAMPLES cannot make one.
import t, { type Test } from 'tap';
import { Binary } from 'mongodb';
import { clusterKeys, SLICE_MARKS, sliceKeys } from '../../lib/shared/keys.js';
import { collectionNames, type LogDoc } from '../../lib/storage/format/documents.js';
import { ConfigError, loadConfig } from '../../lib/ops/config.js';
import { probeStorage } from '../../lib/ops/storage-probe.js';
import { readStatus } from '../../lib/cluster/status.js';
import { renderStatus } from '../../lib/cli/commands/status.js';
import { MAX_APPLY_SAMPLES } from '../../lib/storage/format/codec.js';
import { rebuildNow, sample, storageKit, MIN, type StorageKit } from '../helpers/storage.js';

const T0 = 1_764_576_000_000;
const BUCKET = 10 * MIN;
const PKS = Array.from({ length: 20 }, (_, i) => 1_000_000 + i * 23);
const POISON = 'node-x:1764575000000:4242:7';

async function fill(k: StorageKit, from: number, to: number): Promise<void> {
  for (let m = from; m < to; m++) await k.store(PKS.map((pk) => sample(pk, T0 + m * MIN, 4000 + (pk % 61) + m)));
}

/** A document of the first period that no node applied (as if its writer died), whose payload is not a log. */
async function poison(k: StorageKit): Promise<Buffer> {
  const payload = Buffer.from([0x7f, 0x01, 0x02, 0x03, 0x04]);
  await k.db
    .collection<LogDoc>(collectionNames.log(T0))
    .insertOne({ _id: POISON, n: 'node-x', c: 3, b: new Binary(payload) });
  return payload;
}

async function exact(t: Test, k: StorageKit): Promise<void> {
  const wrong: string[] = [];
  for (const pk of PKS) {
    const points = await k.points(pk);
    const totals = await k.totals.read(pk);
    const sum = points.reduce((s, p) => s + p.f, 0);
    if (totals?.samples !== points.length || totals?.followerSum !== sum)
      wrong.push(`pk ${pk}: totals ${totals?.samples}/${totals?.followerSum}, points ${points.length}/${sum}`);
  }
  t.same(wrong, [], 'every running total equals its points');
}

async function closedPeriods(k: StorageKit): Promise<number> {
  const mark = await k.redis.get(clusterKeys(k.cluster).closed);
  return mark === null ? 0 : (Number(mark) - T0) / BUCKET + 1;
}

t.test('a log document that cannot be applied is quarantined and every period closes', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 30);
  const payload = await poison(k);
  // and one whose payload is not binary at all (another program's document)
  await k.db
    .collection<LogDoc>(collectionNames.log(T0 + BUCKET))
    .insertOne({ _id: 'text-payload', n: 'x', c: 1, b: 'not a log' as unknown as Binary });
  k.clock.now = T0 + 3 * BUCKET + MIN;
  await k.closer.closeDue().catch(() => 'failed');
  await k.closer.closeDue().catch(() => 'failed');
  const closed = await closedPeriods(k);
  t.equal(closed, 3, `every period closes (${closed} of 3)`);
  const kept = await k.db
    .collection<{ _id: string; b: Binary; p: number }>('quarantine')
    .findOne({ _id: `${T0}:${POISON}` });
  t.same(kept && Buffer.from(kept.b.buffer), payload, 'the document is kept in MongoDB with its payload');
  t.equal(kept?.p, T0);
  const probe = await probeStorage(k.redis, k.cluster, k.layout, k.clock.now);
  t.equal(probe.quarantined, 2, 'the metric counts both');
  const status = await readStatus(k.redis, loadConfig({}, { CLUSTER: k.cluster }), k.clock.now);
  t.match(
    status.quarantined,
    [
      { token: POISON, period: T0 },
      { token: 'text-payload', period: T0 + BUCKET },
    ],
    'status names them, oldest first',
  );
  t.match(renderStatus(status), new RegExp(`quarantined log documents: 2.*${POISON}`, 's'));
  t.equal((await k.points(PKS[0]!)).length, 30, 'the other samples are all points');
  await exact(t, k);
});

t.test('a rebuild sets it aside too, and rebuilds the rest', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0 });
  await fill(k, 0, 15);
  await poison(k);
  // Redis lost every slice's totals: the rebuild reads the log, poison included
  for (let s = 0; s < k.layout.slices; s++)
    await k.redis.hdel(sliceKeys(k.cluster, k.layout.slices, s).marks, SLICE_MARKS.since);
  k.clock.now = T0 + 15 * MIN;
  const outcome = await rebuildNow(k.rebuilder, k.redis, k.cluster, k.clock, k.layout.slices).catch(
    (e: Error) => `failed: ${e.message}`,
  );
  t.equal(outcome, 'rebuilt');
  k.clock.now = T0 + 2 * BUCKET + MIN;
  await k.closer.closeDue().catch(() => 'failed');
  t.equal(await closedPeriods(k), 2, 'both periods close');
  t.equal(await k.redis.hlen(clusterKeys(k.cluster).quarantined), 1, 'one document quarantined');
  await exact(t, k);
});

t.test('a document larger than one apply call takes is applied in parts', async (t) => {
  const k = await storageKit(t, { bucketMs: BUCKET, start: T0, pkMax: 1_000_000 + 6000 * 16 });
  // one slice's pks, 10 intervals each: more samples than one call of the script takes
  const pks = Array.from({ length: 6000 }, (_, i) => 1_000_000 + i * k.layout.slices);
  const samples = pks.flatMap((pk) =>
    Array.from({ length: 10 }, (_, m) => ({ ...sample(pk, T0 + m * MIN, 100 + m), username: `u${pk}` })),
  );
  t.ok(samples.length > MAX_APPLY_SAMPLES, `${samples.length} samples in one slice`);
  const writer = k.writer;
  const batch = writer.batch(samples);
  await writer.log(batch);
  k.clock.now = T0 + BUCKET + MIN;
  const outcome = await k.closer.closeDue().catch((e: Error) => `failed: ${e.message}`);
  t.equal(outcome, 'closed');
  t.equal((await k.points(pks[5]!)).length, 10, "a pk's points are all there");
  t.equal((await k.totals.read(pks[7]!))?.samples, 10, 'and counted once');
});

t.test('FLUSH_MAX_SAMPLES is bounded by what one apply call takes', async (t) => {
  const refused = (value: string): Error | undefined => {
    try {
      loadConfig({}, { FLUSH_MAX_SAMPLES: value });
    } catch (err) {
      return err as Error;
    }
    return undefined;
  };
  t.ok(refused(String(MAX_APPLY_SAMPLES + 1)) instanceof ConfigError, 'one more than a call takes is refused');
  const message = refused('50000')?.message ?? '';
  t.match(message, /^FLUSH_MAX_SAMPLES="50000" is not valid: /, 'naming the variable and the value');
  t.match(message, String(MAX_APPLY_SAMPLES), 'and what is allowed');
  t.notMatch(message, /\n/, 'on one line');
  t.equal(loadConfig({}, { FLUSH_MAX_SAMPLES: String(MAX_APPLY_SAMPLES) }).flushMaxSamples, MAX_APPLY_SAMPLES);
});
