// `influencer-node demo`: the mock, two node processes and the dashboard against the test servers;
// SIGINT stops it all in order with exit code 0. A URL set where nothing answers: it says which.
// (Its own servers, when no URL is set: demo-servers.test.ts.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Redis } from 'ioredis';
import { readMembers } from '../../lib/cluster/member-view.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { waitExit } from '../kit/children.js';
import { until } from '../kit/wait.js';
import { services } from '../kit/servers.js';

t.test('demo --nodes 2 --pks 500 --interval-ms 2000', async (t) => {
  const svc = await services(t);
  const env = {
    REDIS_URL: svc.redisUrl,
    MONGO_URL: svc.mongoUrl,
    MONGO_DB: svc.mongoDb,
    CLUSTER: svc.cluster,
    HEARTBEAT_TTL_MS: '2000',
  };
  const redis = new Redis(svc.redisUrl);
  // --port 0: a free port, so parallel test files never collide on 8080
  const demo = spawnCli(['demo', '--nodes', '2', '--pks', '500', '--interval-ms', '2000', '--port', '0'], env);
  t.teardown(async () => {
    if (demo.exitCode === null && demo.signalCode === null) {
      // a failed run: the nodes run in their own process group, so stop them by the pids on their cards
      for (const c of await readMembers(redis, svc.cluster))
        if (c.ok)
          try {
            process.kill(c.card.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
      demo.kill('SIGKILL');
    }
    redis.disconnect();
  });

  await until(() => /dashboard http:\/\/\S+\//.test(demo.output()), 60_000, 'the dashboard URL');
  const url = /dashboard (http:\/\/\S+)\//.exec(demo.output())![1];
  t.match(
    demo.output(),
    /mock +http:\/\/127\.0\.0\.1:\d+ +\(500 influencers, pks 1000000\.\.1000499\)/,
    'the mock and its pks',
  );
  t.match(demo.output(), /nodes +demo-1, demo-2/);
  const page = await fetch(`${url}/`);
  t.equal(page.status, 200, 'the dashboard answers');
  t.match(await page.text(), /<title>Influencers/);

  await until(
    async () => {
      const c = (await (await fetch(`${url}/api/cluster`)).json()) as {
        summary: { active: number };
        members: Array<{ stats?: { owned?: number } }>;
      };
      return c.summary.active === 2 && c.members.reduce((a, m) => a + (m.stats?.owned ?? 0), 0) === 500;
    },
    60_000,
    'two active nodes sharing the 500 pks',
  );
  await until(
    () => /members 2\/2 active {2}owned 500\/500 {2}samples\/interval [1-9]\d*/.test(demo.output()),
    60_000,
    'a summary line with samples stored',
  );
  await until(
    async () => ((await fetch(`${url}/api/stats`).then((r) => r.json())) as { influencers: number }).influencers > 0,
    30_000,
    'data behind the dashboard',
  );

  demo.kill('SIGINT');
  t.equal(await waitExit(demo, 90_000), 0, 'SIGINT: exit 0');
  t.match(demo.output(), /nodes stopped \(exit codes 0, 0\)/, 'the nodes stopped first, cleanly');
  t.same(await readMembers(redis, svc.cluster), [], 'the nodes left the cluster (their keys are gone)');
  await t.rejects(fetch(`${url}/api/stats`), 'the dashboard is closed');
  t.notMatch(demo.output(), /"level":(50|60)/, 'no error logged');
});

t.test('demo --redis-cluster 3: a Redis Cluster of its own under the nodes', async (t) => {
  const svc = await services(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'inode-demo-cluster-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { MONGO_URL: svc.mongoUrl, MONGO_DB: svc.mongoDb, CLUSTER: svc.cluster, HEARTBEAT_TTL_MS: '2000' };
  const args = ['demo', '--redis-cluster', '3', '--nodes', '2', '--pks', '300', '--interval-ms', '2000', '--port', '0'];
  const demo = spawnCli([...args, '--data-dir', dataDir], env);
  t.teardown(() => {
    if (demo.exitCode === null && demo.signalCode === null) demo.kill('SIGKILL');
  });
  await until(() => /dashboard http:\/\/\S+\//.test(demo.output()), 60_000, 'the dashboard URL');
  t.match(
    demo.output(),
    /^redis +Redis Cluster redis:\/\/:\*\*\*@127\.0\.0\.1:\d+,.*a Redis Cluster of 3 masters started by the demo/m,
    'its own cluster, the password masked',
  );
  await until(
    () => /members 2\/2 active {2}owned 300\/300 {2}samples\/interval [1-9]\d*/.test(demo.output()),
    60_000,
    'a summary line with samples stored',
  );
  demo.kill('SIGINT');
  t.equal(await waitExit(demo, 90_000), 0, 'SIGINT: exit 0');
  t.match(demo.output(), /servers stopped \(redis-server, redis-server, redis-server\)/, 'its three masters stopped');
  t.notMatch(demo.output(), /"level":(50|60)/, 'no error logged');
  const both = await runCli(['demo', '--redis-cluster', '3', '--port', '0'], { ...env, REDIS_URL: svc.redisUrl });
  t.equal(both.code, 2, 'with REDIS_URL set too: a usage error');
  t.match(
    both.stderr,
    /--redis-cluster starts a Redis Cluster of its own: leave REDIS_URL and REDIS_CLUSTER_NODES unset/,
  );
});

t.test('demo with a URL where nothing answers: names that server and what to do (exit 1)', async (t) => {
  const svc = await services(t);
  const noRedis = await runCli(['demo', '--port', '0'], { REDIS_URL: 'redis://127.0.0.1:1', MONGO_URL: svc.mongoUrl });
  t.equal(noRedis.code, 1);
  t.match(
    noRedis.stderr,
    /^influencer-node: Redis unreachable at redis:\/\/127\.0\.0\.1:1 \(.*ECONNREFUSED.*\): start Redis ≥ 6 there, or set REDIS_URL to one that runs \(unset, `influencer-node demo` starts its own\)$/m,
  );
  t.notMatch(noRedis.stderr, /MongoDB/);
  const noMongo = await runCli(['demo', '--port', '0'], {
    REDIS_URL: svc.redisUrl,
    MONGO_URL: 'mongodb://127.0.0.1:1',
  });
  t.equal(noMongo.code, 1);
  t.match(noMongo.stderr, /MongoDB unreachable at mongodb:\/\/127\.0\.0\.1:1 .*or set MONGO_URL to one that runs/);
  t.equal(noMongo.stdout, '', 'nothing started');
});

t.test('serve: the API on a port until SIGTERM; a bad flag is a usage error', async (t) => {
  const svc = await services(t);
  const env = { REDIS_URL: svc.redisUrl, MONGO_URL: svc.mongoUrl, MONGO_DB: svc.mongoDb, CLUSTER: svc.cluster };
  const serve = spawnCli(['serve', '--port', '0'], env);
  t.teardown(() => {
    if (serve.exitCode === null) serve.kill('SIGKILL');
  });
  await until(() => /dashboard http:\/\/127\.0\.0\.1:\d+\//.test(serve.output()), 30_000, 'the URL');
  const url = /dashboard (http:\/\/\S+)\//.exec(serve.output())![1];
  t.match(await (await fetch(`${url}/api/stats`)).json(), {
    cluster: svc.cluster,
    influencers: 0,
    averageFollowers: null,
  });
  serve.kill('SIGTERM');
  t.equal(await waitExit(serve), 0);
  const bad = await runCli(['serve', '--port', 'http'], env);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--port="http" is not valid: expected an integer from 0 to 65535/);
  const down = await runCli(['serve', '--port', '0'], { ...env, REDIS_URL: 'redis://127.0.0.1:1' });
  t.equal(down.code, 1);
  t.match(down.stderr, /Redis unreachable at redis:\/\/127\.0\.0\.1:1/);
});
