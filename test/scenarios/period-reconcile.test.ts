// A period's reconcile of its log with the open buffers: a log document no node applied (its node
// died between the log insert and the Lua step) is applied once, and a log document from elsewhere
// (garbage bytes) is quarantined while the good ones are applied and the period closes.
import t from 'tap';
import { Binary } from 'mongodb';
import { encodeLog } from '../../lib/storage/format/codec.js';
import { collectionNames, type LogDoc } from '../../lib/storage/format/documents.js';
import { clusterKeys } from '../../lib/shared/keys.js';
import { sample, storageKit, HOUR, MIN } from '../helpers/storage.js';

const T0 = 1_764_576_000_000;
const at = (minute: number): number => T0 + minute * MIN;

t.test("a log document no node applied is applied by the period's reconcile, once", async (t) => {
  const k = await storageKit(t, { start: T0 });
  await k.store([sample(1, at(1), 100)]);
  // a node that died between its log insert and its Lua step
  const dead = k.otherWriter('node-dead');
  const orphan = dead.batch([sample(1, at(2), 110), sample(2, at(2), 220)]);
  await dead.log(orphan);
  t.match(await k.totals.read(1), { samples: 1 }, 'not counted yet');
  k.clock.now = T0 + HOUR + MIN + 1;
  t.equal(await k.closer.closeDue(), 'closed');
  t.match(await k.totals.read(1), { samples: 2, followerSum: 210, latestAt: at(2) }, 'counted once by the reconcile');
  t.match(await k.totals.read(2), { samples: 1, followerSum: 220 });
  t.same(
    (await k.points(1)).map((p) => p.f),
    [100, 110],
    'and in the bucket',
  );
});

t.test('a log document from elsewhere is not trusted blindly', async (t) => {
  const k = await storageKit(t, { start: T0 });
  const logs = k.db.collection<LogDoc>(collectionNames.log(T0));
  await logs.insertOne({ _id: 'garbage', n: 'x', c: 1, b: new Binary(Buffer.from([7, 7, 7])) });
  await logs.insertOne({
    _id: 'good',
    n: 'x',
    c: 1,
    b: new Binary(encodeLog(T0, [{ pk: 3, at: at(1), f: 30, g: 3 }])),
  });
  k.clock.now = T0 + HOUR + MIN + 1;
  t.equal(await k.closer.closeDue(), 'closed', 'the period closes without the corrupt document');
  t.equal(await k.redis.hlen(clusterKeys(k.cluster).quarantined), 1, 'which is quarantined, not skipped silently');
  t.match(await k.totals.read(3), { samples: 1, followerSum: 30 }, 'the good one is applied');
});
