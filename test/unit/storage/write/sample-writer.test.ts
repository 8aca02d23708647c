// The SampleWriter, the buffer between polling and the store, against real servers: batches logged
// at once and applied in the order they were made, the log going on while Redis is down, and samples
// older than the layout counted late.
import t from 'tap';
import { createLogger } from '../../../../lib/shared/log.js';
import { SampleWriter } from '../../../../lib/storage/write/sample-writer.js';
import { LogWriter } from '../../../../lib/storage/write/log-writer.js';
import type { Sample } from '../../../../lib/storage/format/documents.js';
import { sample, storageKit, MIN } from '../../../helpers/storage.js';
import { until, sleep } from '../../../kit/wait.js';

const log = createLogger('silent');
const T0 = 1_764_576_000_000;
const at = (minute: number): number => T0 + minute * MIN;

t.test('SampleWriter: batches logged at once, applied in the order they were made', async (t) => {
  const k = await storageKit(t);
  let logging = 0;
  let maxLogging = 0;
  let calls = 0;
  class HeldFirst extends LogWriter {
    override async log(batch: Parameters<LogWriter['log']>[0]): Promise<void> {
      const first = calls++ === 0;
      maxLogging = Math.max(maxLogging, ++logging);
      try {
        if (first) await sleep(800);
        await super.log(batch);
      } finally {
        logging--;
      }
    }
  }
  const writer = new SampleWriter(
    new HeldFirst(k.db, k.totals, k.layout, 'node-a'),
    { flushMaxSamples: 2, flushMaxAgeMs: 50, bufferMaxSamples: 1000, writeConcurrency: 3 },
    log,
  );
  const logged: number[] = [];
  writer.on('batch', (b: { stored: Sample[] }) => logged.push((b.stored[0]!.at - T0) / MIN));
  for (const minute of [10, 11, 12]) for (const pk of [1, 2]) writer.add(sample(pk, at(minute), 1000 * pk + minute));
  t.ok(await writer.flushAll(10_000), 'everything logged');
  t.equal(maxLogging, 3, 'three batches logged at once');
  t.same([logged.length, logged[2]], [3, 10], 'the held batch was logged last');
  for (const pk of [1, 2]) {
    t.match(
      await k.totals.read(pk),
      {
        samples: 3,
        followerSum: 3 * 1000 * pk + 33,
        latestAt: at(12),
        followerCount: 1000 * pk + 12,
        previousFollowerCount: 1000 * pk + 11,
      },
      `pk ${pk}`,
    );
  }
  t.equal(writer.oldestUnlogged(), null, 'nothing left unlogged');
  await writer.stop(0);
});

t.test('SampleWriter: while Redis fails the log goes on; the Lua step catches up when it is back', async (t) => {
  const k = await storageKit(t);
  class RedisDown extends LogWriter {
    down = true;
    override async apply(batch: Parameters<LogWriter['apply']>[0]): Promise<void> {
      if (this.down) throw new Error('Redis down');
      await super.apply(batch);
    }
  }
  const inner = new RedisDown(k.db, k.totals, k.layout, 'node-a');
  const writer = new SampleWriter(
    inner,
    { flushMaxSamples: 2, flushMaxAgeMs: 20, bufferMaxSamples: 1000, writeConcurrency: 2 },
    log,
  );
  for (const minute of [1, 2, 3]) for (const pk of [1, 2]) writer.add(sample(pk, at(minute), 100 * minute + pk));
  t.ok(await writer.flushAll(5000), 'every sample logged though Redis is down');
  t.equal(writer.length, 0);
  t.equal(writer.pendingApply, 6, 'six samples wait for the Lua step');
  t.equal(await k.totals.read(1), null, 'not counted yet');
  inner.down = false;
  await sleep(6000);
  t.equal(writer.pendingApply, 0, 'applied once Redis answers');
  t.match(await k.totals.read(1), { samples: 3 });
  await writer.stop(0);
});

t.test(
  "SampleWriter: samples older than the layout's first period are counted late and leave nothing waiting",
  async (t) => {
    const k = await storageKit(t);
    const writer = new SampleWriter(
      new LogWriter(k.db, k.totals, k.layout, 'node-a'),
      { flushMaxSamples: 4, flushMaxAgeMs: 20, bufferMaxSamples: 1000, writeConcurrency: 2 },
      log,
    );
    const first = k.layout.firstPeriod;
    for (const pk of [1, 2]) writer.add(sample(pk, first - MIN, 100 + pk));
    for (const pk of [1, 2]) writer.add(sample(pk, first, 200 + pk));
    t.ok(await writer.flushAll(5000), 'everything written');
    await until(() => writer.pendingApply === 0, 5000, 'the Lua steps done');
    t.equal(writer.pendingApply, 0, 'nothing left waiting for the Lua step');
    t.equal(writer.counters.late, 2, 'the two older samples counted late');
    t.equal(writer.counters.stored, 2, 'the two of the layout stored');
    t.match(await k.totals.read(1), { samples: 1, followerSum: 201 });
    await writer.stop(0);
  },
);
