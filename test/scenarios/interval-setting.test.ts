// INTERVAL_MS is part of the stored layout: a node whose setting disagrees with it refuses to start with
// one line (a pk moving to it would change its rate), and a layout stored by a version that did not
// record the interval is adopted by the first node of this version and compared from then on.
import t from 'tap';
import { loadLayout, LayoutMismatch } from '../../lib/storage/format/layout.js';
import { collectionNames, type LayoutDoc } from '../../lib/storage/format/documents.js';
import { readMembers } from '../../lib/cluster/member-view.js';
import { connected } from '../kit/servers.js';
import { spawnCli, runCli } from '../helpers/cli.js';
import { stopChild } from '../kit/children.js';
import { until } from '../kit/wait.js';

const HOUR = 3_600_000;

t.test('a node with another INTERVAL_MS than the cluster refuses to start, with one line', async (t) => {
  const { redis, db, ...svc } = await connected(t, 'interval-refused');
  const env = {
    REDIS_URL: svc.redisUrl,
    MONGO_URL: svc.mongoUrl,
    MONGO_DB: svc.mongoDb,
    CLUSTER: svc.cluster,
    MOCKSTAGRAM_URL: 'http://127.0.0.1:9',
    PK_MIN: '1',
    PK_MAX: '50',
    HEARTBEAT_TTL_MS: '1500',
  };
  const first = spawnCli(['start'], { ...env, INTERVAL_MS: '2000', NODE_ID: 'first' });
  t.teardown(() => {
    if (first.exitCode === null) first.kill('SIGKILL');
  });
  await until(
    async () => (await readMembers(redis, svc.cluster)).some((c) => c.ok && c.card.state === 'active'),
    30_000,
    'the first node active',
  );
  const other = await runCli(['start'], { ...env, INTERVAL_MS: '3000', NODE_ID: 'other' }, 20_000).catch(
    (err: Error) => ({ code: null, stdout: '', stderr: err.message }),
  );
  t.equal(other.code, 2, `exit 2 (${other.code === null ? 'still running after 20 s' : `exit ${other.code}`})`);
  const lines = other.stderr.split('\n').filter((l) => l.startsWith('influencer-node: '));
  t.same(
    lines,
    [
      "influencer-node: INTERVAL_MS=3000 differs from the 2000 this cluster's data was written with: use INTERVAL_MS=2000",
    ],
    'the reason in one line',
  );
  t.notOk(
    (await readMembers(redis, svc.cluster)).some((c) => c.ok && c.card.id === 'other'),
    'it never joined the cluster',
  );
  t.equal(await stopChild(first), 0, 'the first node ran on');
});

t.test('a layout stored without the interval (an older version) is adopted, then compared', async (t) => {
  const { db } = await connected(t, 'interval-adopted');
  const meta = db.collection<LayoutDoc>(collectionNames.meta);
  const firstPeriod = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR;
  await meta.insertOne({ _id: 'layout', format: 2, bucketMs: HOUR, slices: 16, firstPeriod });
  const settings = { intervalMs: 60_000, bucketMs: HOUR, pkMin: 1_000_000, pkMax: 1_000_999 };

  // a reader (serve, show) takes its setting and writes nothing
  const read = await loadLayout(db, { ...settings, intervalMs: 30_000 });
  t.equal(read.intervalMs, 30_000);
  t.equal((await meta.findOne({ _id: 'layout' }))?.intervalMs, undefined, 'a reader records nothing');

  const layout = await loadLayout(db, settings, Date.now(), { recordInterval: true });
  t.match(layout, { intervalMs: 60_000, bucketMs: HOUR, slices: 16, firstPeriod }, 'the stored layout kept');
  t.match(await meta.findOne({ _id: 'layout' }), { intervalMs: 60_000, firstPeriod }, 'the interval recorded');
  await t.rejects(
    loadLayout(db, { ...settings, intervalMs: 30_000 }, Date.now(), { recordInterval: true }),
    new LayoutMismatch(
      "INTERVAL_MS=30000 differs from the 60000 this cluster's data was written with: use INTERVAL_MS=60000",
    ),
    'from then on another interval is refused',
  );
  t.match(await loadLayout(db, settings, Date.now(), { recordInterval: true }), { intervalMs: 60_000 });

  // a stored interval no version writes is an unreadable layout: refused with a line, nothing changed
  await meta.updateOne({ _id: 'layout' }, { $set: { intervalMs: 'sixty' as never } });
  await t.rejects(loadLayout(db, settings, Date.now(), { recordInterval: true }), /stored layout .* is unreadable/);
  t.match(await meta.findOne({ _id: 'layout' }), { intervalMs: 'sixty', firstPeriod }, 'left as it was');
});
