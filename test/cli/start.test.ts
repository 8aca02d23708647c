// `influencer-node start` when its servers are not there yet: it says which one, retries, and
// joins once they are up; SIGTERM stops it with exit 0.
import t from 'tap';
import { readMembers } from '../../lib/cluster/member-view.js';
import { freePort, plan, services, startFerret, startRedis } from '../kit/servers.js';
import { spawnCli } from '../helpers/cli.js';
import { waitExit } from '../kit/children.js';
import { sleep, until } from '../kit/wait.js';
import { Redis } from 'ioredis';

t.test('Mongo and Redis unreachable at start: named, retried, then joined', async (t) => {
  const svc = await services(t);
  // the servers' ports and passwords are chosen first, so the node can be given their URLs
  const [mongoAt, redisAt] = await Promise.all([plan('ferret'), plan('redis')]);
  const env = {
    REDIS_URL: redisAt.url,
    MONGO_URL: mongoAt.url,
    MONGO_DB: svc.mongoDb,
    CLUSTER: svc.cluster,
    MOCKSTAGRAM_URL: 'http://127.0.0.1:9',
    PK_MIN: '1',
    PK_MAX: '50',
    INTERVAL_MS: '2000',
    HEARTBEAT_TTL_MS: '1500',
    NODE_ID: 'late',
  };
  const node = spawnCli(['start'], env);
  t.teardown(() => {
    if (node.exitCode === null) node.kill('SIGKILL');
  });
  await until(
    () => /MongoDB unreachable/.test(node.output()) && /Redis unreachable/.test(node.output()),
    20_000,
    'both named',
  );
  await sleep(1500);
  t.equal(node.exitCode, null, 'still running, retrying');
  t.equal(
    node
      .output()
      .split('\n')
      .filter((l) => /MongoDB unreachable/.test(l)).length,
    1,
    'said once, not per retry',
  );
  const ferret = await startFerret(mongoAt);
  const redisServer = await startRedis(redisAt);
  const redis = new Redis(redisServer.url);
  t.teardown(() => redis.disconnect());
  await until(
    async () => (await readMembers(redis, svc.cluster)).some((c) => c.ok && c.card.state === 'active'),
    30_000,
    'the node active once both are up',
  );
  node.kill('SIGTERM');
  t.equal(await waitExit(node), 0, 'exit 0 on SIGTERM');
  t.same(await readMembers(redis, svc.cluster), [], 'its member key is gone after a graceful stop');
  await ferret.stop();
  await redisServer.stop();
});

t.test('SIGTERM while still waiting for servers exits 0 at once', async (t) => {
  const port = await freePort();
  const node = spawnCli(['start'], {
    REDIS_URL: `redis://127.0.0.1:${port}`,
    MONGO_URL: `mongodb://127.0.0.1:${port}`,
    PK_MIN: '1',
    PK_MAX: '5',
  });
  await until(() => /unreachable/.test(node.output()), 20_000, 'waiting for servers');
  node.kill('SIGTERM');
  t.equal(await waitExit(node, 15_000), 0);
});

t.test('a password in a server URL is never logged', async (t) => {
  const svc = await services(t);
  const withPassword = (url: string): string => url.replace('://', '://user:hunter2@');
  const node = spawnCli(['start'], {
    REDIS_URL: svc.redisUrl,
    MONGO_URL: svc.mongoUrl,
    MONGO_DB: svc.mongoDb,
    CLUSTER: svc.cluster,
    NODE_ID: 'masked',
    MOCKSTAGRAM_URL: withPassword('http://127.0.0.1:9'),
    PK_MIN: '1',
    PK_MAX: '5',
    INTERVAL_MS: '2000',
    HEARTBEAT_TTL_MS: '1500',
    SUSPICIOUS_INTERVAL_MS: '0',
    LOG_LEVEL: 'info',
  });
  t.teardown(() => {
    if (node.exitCode === null) node.kill('SIGKILL');
  });
  await until(() => /node active/.test(node.output()), 30_000, 'the node active');
  node.kill('SIGTERM');
  t.equal(await waitExit(node), 0);
  t.match(node.output(), /"mockstagram":"http:\/\/user:\*\*\*@127\.0\.0\.1:9"/, 'MOCKSTAGRAM_URL shown masked');
  t.notMatch(node.output(), /hunter2/, 'the password nowhere in the log');
});
