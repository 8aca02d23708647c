// `influencer-node demo` without REDIS_URL / MONGO_URL: it installs what is missing (apt-get and go
// stood in for by a sandbox PATH), starts its own redis-server and FerretDB with their data in
// DATA_DIR, stops them last, reuses the data on a second run, and stops in order when one dies.
// Also: a server answering at the default address is used, and the bad cases give one line.
import t from 'tap';
import { createServer } from 'node:net';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { answers } from '../../lib/ops/ports.js';
import { maskUrl } from '../../lib/shared/mask-url.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { waitExit } from '../kit/children.js';
import { until } from '../kit/wait.js';
import { sandbox } from '../helpers/sandbox.js';
import { services, startRedis, type Owner } from '../kit/servers.js';

const DEMO = ['demo', '--nodes', '2', '--pks', '200', '--interval-ms', '2000', '--port', '0'];
const NOBODY = { uid: 65534, gid: 65534 };
// the demo starts its own servers only when nothing answers at the default addresses
const defaultsTaken = (await answers(6379)) || (await answers(27017));
const skip = defaultsTaken ? 'something answers at 127.0.0.1:6379 or :27017: the demo would use it' : false;

/** A demo run; if a test fails half way, it is stopped (SIGTERM: in order), and its servers with it. */
function demo(t: Owner, env: Record<string, string>): ReturnType<typeof spawnCli> {
  const child = spawnCli(DEMO, { HEARTBEAT_TTL_MS: '2000', ...env });
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await waitExit(child, 90_000).catch(() => child.kill('SIGKILL'));
    for (const pid of serverPids(child.output()))
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
  });
  return child;
}

/** `text` as a regular expression that matches it literally. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The pids of the servers a demo says it started. */
function serverPids(output: string): number[] {
  return [...output.matchAll(/started by the demo \(pid (\d+)\)/g)].map((m) => Number(m[1]));
}

function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

async function dashboard(run: ReturnType<typeof spawnCli>): Promise<string> {
  await until(
    () => /dashboard http:\/\/\S+\//.test(run.output()) || run.exitCode !== null,
    120_000,
    'the dashboard URL',
  );
  const url = /dashboard (http:\/\/\S+)\//.exec(run.output())?.[1];
  if (!url) throw new Error(`the demo exited: ${run.output()}`);
  return url;
}

/** Both nodes active (a node signalled before it handles signals dies of it, exit 128). */
function active(run: ReturnType<typeof spawnCli>): Promise<number> {
  return until(() => /members 2\/2 active/.test(run.output()), 60_000, 'both nodes active');
}

async function samples(url: string, pk = 1_000_000): Promise<number> {
  const res = await fetch(`${url}/api/influencers/${pk}`);
  return res.ok ? ((await res.json()) as { samples: number }).samples : 0;
}

t.test(
  'a fresh machine: demo installs both servers, starts them, stops them last; a second run reuses their data',
  { skip },
  async (t) => {
    const box = await sandbox(t, { apt: true, go: 'builds' });
    const dataDir = join(box.root, 'demo-data');
    const env = { ...box.env, DATA_DIR: dataDir };

    const first = demo(t, env);
    const url = await dashboard(first);
    const out = first.output();
    t.match(out, /^ {2}apt-get install -y redis-server … \d+\.\d s$/m, 'redis-server installed, visibly');
    t.match(out, /^ {2}compile \(go build.* … \d+\.\d s$/m, 'FerretDB built, visibly');
    t.match(
      out,
      new RegExp(
        `^redis +redis://:\\*\\*\\*@127\\.0\\.0\\.1:\\d+ +redis-server [\\d.]+ started by the demo \\(pid \\d+\\), data in ${dataDir}/redis$`,
        'm',
      ),
    );
    t.match(
      out,
      new RegExp(
        `^mongodb +mongodb://influencer:\\*\\*\\*@127\\.0\\.0\\.1:\\d+ +ferretdb v1\\.24\\.2 started by the demo \\(pid \\d+\\), data in ${dataDir}/ferretdb$`,
        'm',
      ),
    );
    await until(async () => (await samples(url)) >= 4, 60_000, 'four samples of pk 1000000');
    await active(first);
    for (const dir of ['redis', 'ferretdb'].map((d) => join(dataDir, d))) {
      t.equal(statSync(dir).mode & 0o777, 0o700, `${dir}: 0700`);
      t.equal(statSync(join(dir, 'password')).mode & 0o777, 0o600, `${dir}/password: 0600`);
      t.notOk(out.includes(readFileSync(join(dir, 'password'), 'utf8').trim()), 'its password is not printed');
    }

    const busy = await runCli(DEMO, env);
    t.equal(busy.code, 1, 'a second demo on the same data directory: exit 1');
    t.match(
      busy.stderr,
      new RegExp(
        `^influencer-node: the data directory ${dataDir} is in use by another demo \\(pid \\d+\\): stop that one, or pass --data-dir`,
        'm',
      ),
    );

    const pids = serverPids(out);
    first.kill('SIGINT');
    t.equal(await waitExit(first, 90_000), 0, 'SIGINT: exit 0');
    const stopped = first.output();
    t.ok(
      stopped.indexOf('nodes stopped (exit codes 0, 0)') < stopped.indexOf('servers stopped (redis-server, ferretdb)'),
      'the servers after the nodes',
    );
    t.match(stopped, new RegExp(`servers stopped \\(redis-server, ferretdb\\); their data stays in ${dataDir}\\n`));
    t.ok(pids.length === 2 && pids.every(gone), 'both server processes are gone');

    const startedAt = Date.now();
    const second = demo(t, env);
    const url2 = await dashboard(second);
    t.notMatch(second.output(), /apt-get|go build/, 'nothing installed the second time');
    t.ok((await samples(url2)) >= 4, 'the running totals of the first run are there (Redis data reused)');
    const timeline = (await (
      await fetch(`${url2}/api/influencers/1000000/timeline?from=${startedAt - 600_000}&to=${startedAt}`)
    ).json()) as { points: unknown[] };
    t.ok(
      timeline.points.length >= 4,
      `the first run's ${timeline.points.length} points are there (FerretDB data reused)`,
    );

    // a server dying under the demo: it says which, stops the rest in order and exits 1
    const [redisPid, ferretPid] = serverPids(second.output());
    process.kill(redisPid!, 'SIGKILL');
    t.equal(await waitExit(second, 120_000), 1, 'exit 1');
    t.match(
      second.output(),
      new RegExp(
        `influencer-node: redis-server \\(pid ${redisPid}, started by the demo\\) exited \\(signal SIGKILL\\) while the demo ran: stopping the demo`,
      ),
    );
    t.match(
      second.output(),
      /nodes stopped \(exit codes \d+, \d+\)[\s\S]*servers stopped[\s\S]*\nstopped\n/,
      'the rest stopped in order',
    );
    t.ok(gone(ferretPid!), 'FerretDB stopped too');
    t.notMatch(second.output(), /\bat .*\.js:\d+/, 'no stack trace');
  },
);

t.test('a URL set: that server is used and none is started', async (t) => {
  const svc = await services(t);
  const box = await sandbox(t);
  const run = demo(t, {
    ...box.env,
    REDIS_URL: svc.redisUrl,
    MONGO_URL: svc.mongoUrl,
    MONGO_DB: svc.mongoDb,
    CLUSTER: svc.cluster,
  });
  await dashboard(run);
  t.match(run.output(), new RegExp(`^redis +${literal(maskUrl(svc.redisUrl))} +\\(REDIS_URL\\)$`, 'm'));
  t.match(run.output(), new RegExp(`^mongodb +${literal(maskUrl(svc.mongoUrl))} +\\(MONGO_URL\\)$`, 'm'));
  for (const url of [svc.redisUrl, svc.mongoUrl]) {
    const secret = new URL(url).password;
    if (secret) t.notOk(run.output().includes(secret), 'the password is not printed');
  }
  t.notMatch(run.output(), /started by the demo|redis-server|ferretdb/, 'nothing looked for, nothing started');
  await active(run);
  run.kill('SIGINT');
  t.equal(await waitExit(run, 90_000), 0);
  t.notMatch(run.output(), /servers stopped/);
});

t.test(
  'a server answering at the default address is used',
  { skip: (await answers(6379)) ? 'something answers at 127.0.0.1:6379' : false },
  async (t) => {
    const svc = await services(t);
    // a stand-in for a Redis someone runs at the default address (Debian's, without a password)
    const redis = await startRedis(6379, { auth: false });
    // the tests after this one need the default address free again
    t.teardown(() => redis.stop());
    const run = demo(t, { MONGO_URL: svc.mongoUrl, MONGO_DB: svc.mongoDb, CLUSTER: svc.cluster });
    await dashboard(run);
    t.match(run.output(), /^redis +redis:\/\/127\.0\.0\.1:6379 +\(answered at the default address\)$/m);
    t.notMatch(run.output(), /redis-server/, 'no redis-server started');
    await active(run);
    run.kill('SIGINT');
    t.equal(await waitExit(run, 90_000), 0);
  },
);

t.test('bad cases: one line, exit 1, nothing left running', { skip }, async (t) => {
  const box = await sandbox(t, { apt: true, present: ['ferretdb'] });
  const noRoot = await runCli(DEMO, box.env, 30_000, NOBODY);
  t.equal(noRoot.code, 1, 'not root, redis-server missing: exit 1');
  t.match(
    noRoot.stderr,
    /^influencer-node: redis-server is missing: install it with `sudo apt-get install redis-server`, then run this again$/m,
  );
  t.notMatch(noRoot.stdout, /started by the demo/);

  const both = await sandbox(t, { present: ['redis-server', 'ferretdb'] });
  writeFileSync(join(both.root, 'a-file'), '');
  const dataDir = join(both.root, 'a-file', 'data');
  const notWritable = await runCli([...DEMO, '--data-dir', dataDir], both.env);
  t.equal(notWritable.code, 1, 'data directory not writable: exit 1');
  t.equal(
    notWritable.stderr,
    `influencer-node: the data directory ${dataDir} is not writable (ENOTDIR: not a directory): pass --data-dir or set DATA_DIR to one that is\n`,
  );

  const taken = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => taken.once('listening', r));
  t.teardown(() => {
    taken.close();
  });
  const port = (taken.address() as { port: number }).port;
  const portTaken = await runCli([...DEMO, '--port', String(port)], both.env);
  t.equal(portTaken.code, 1, 'dashboard port taken: exit 1');
  t.equal(
    portTaken.stderr,
    `influencer-node: port ${port} on 127.0.0.1 (--port) is taken by another program: pass --port with a free one, or 0 for any\n`,
  );
  t.equal(portTaken.stdout, '', 'checked before anything started');
});
