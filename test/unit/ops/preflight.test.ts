// The servers checked before `serve` and `demo` run: each one that does not answer is named with its
// address (its password masked), the cause and what to do, on one line; servers that answer pass; a
// Redis that refuses the password is as unreachable as one that is not there.
import t from 'tap';
import { loadConfig } from '../../../lib/ops/config.js';
import { describeUnreachable, unreachableServers } from '../../../lib/ops/preflight.js';
import { freePort, ON_REDIS_CLUSTER, services } from '../../kit/servers.js';

t.test('nothing at either address: both named, the password masked, the cause and what to do', async (t) => {
  const [redisPort, mongoPort] = [await freePort(), await freePort()];
  const config = loadConfig(
    {},
    {
      REDIS_URL: `redis://:s3cret@127.0.0.1:${redisPort}`,
      MONGO_URL: `mongodb://user:s3cret@127.0.0.1:${mongoPort}/`,
    },
  );
  const began = Date.now();
  const down = await unreachableServers(config, 500);
  t.ok(Date.now() - began < 5000, 'one try each, bounded by the timeout');
  t.same(
    down.map((u) => u.server),
    ['Redis', 'MongoDB'],
  );
  const [redis, mongo] = down;
  t.match(redis!.url, `127.0.0.1:${redisPort}`);
  t.match(mongo!.url, `127.0.0.1:${mongoPort}`);
  t.match(redis!.hint, /REDIS_URL.*influencer-node demo/);
  t.match(mongo!.hint, /MONGO_URL.*influencer-node demo/);
  for (const u of down) {
    const line = describeUnreachable(u);
    t.ok(u.error.length > 0, `${u.server}: a cause`);
    t.match(line, new RegExp(`^${u.server} unreachable at \\S+127\\.0\\.0\\.1:\\d+\\S* \\(.+\\): start `));
    t.notMatch(line, /s3cret/, `${u.server}: no password shown`);
    t.notMatch(line, /\n/, `${u.server}: one line`);
  }
});

t.test('the servers answer: nothing is unreachable', async (t) => {
  const svc = await services(t);
  const config = loadConfig({}, { ...svc.redisEnv, MONGO_URL: svc.mongoUrl });
  t.same(await unreachableServers(config, 3000), []);
});

t.test('a Redis that refuses the password is unreachable, with its cause', { skip: ON_REDIS_CLUSTER }, async (t) => {
  const svc = await services(t);
  const wrong = new URL(svc.redisUrl);
  wrong.password = 'not-the-s3cret';
  const config = loadConfig({}, { REDIS_URL: wrong.toString(), MONGO_URL: svc.mongoUrl });
  const down = await unreachableServers(config, 3000);
  t.same(
    down.map((u) => u.server),
    ['Redis'],
    'MongoDB answers; Redis does not',
  );
  t.match(down[0]!.error, /pass|auth/i, 'the cause says it is the password');
  t.notMatch(describeUnreachable(down[0]!), /not-the-s3cret/);
});
