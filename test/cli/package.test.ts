// The package as a release installs it: `npm pack` carries what an install needs (bin, the built
// library, its Lua scripts and dashboard, deploy/, scripts/, README, LICENSE, .env.example) and
// nothing of the benchmarks, the chaos suite or the tests; unpacked and installed with
// `npm install --omit=dev`, its CLI runs, finds its servers and serves its API and dashboard.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanEnv } from '../helpers/cli.js';
import { ROOT } from '../kit/children.js';
import { until } from '../kit/wait.js';
import { freePort, services } from '../kit/servers.js';

const VERSION = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}, timeout = 300_000) {
  return spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout });
}

t.test('npm pack: what an install needs, nothing of bench, chaos or test', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // dist/ is built by npm test before the files run: no need to build it again
  const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT);
  t.equal(pack.status, 0, 'npm pack exits 0', { stderr: pack.stderr });
  const [info] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = info.files.map((f) => f.path);
  for (const needed of [
    'bin/influencer-node.js',
    'dist/lib/cli/cli.js',
    'dist/lib/node.js',
    'lib/lua/apply.lua',
    'lib/read/dashboard/index.html',
    'deploy/systemd/influencer-node@.service',
    'deploy/systemd/influencer-node-serve.service',
    'deploy/sysusers.d/influencer-node.conf',
    'deploy/prometheus/influencer-node.rules.yml',
    'deploy/grafana/influencer-node.json',
    'scripts/build-ferretdb.sh',
    'README.md',
    'LICENSE',
    '.env.example',
    'package.json',
  ])
    t.ok(files.includes(needed), `carries ${needed}`);
  t.same(
    files.filter((f) => /^(dist\/)?(bench|chaos|test)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts'))),
    [],
    'nothing of bench, chaos or test, and no TypeScript source',
  );

  // a release: unpacked into a directory of its own, its production dependencies installed
  const tarball = join(dir, info.filename);
  t.equal(run('tar', ['xzf', tarball, '-C', dir], dir).status, 0, 'the tarball unpacks');
  const pkg = join(dir, 'package');
  const install = run('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], pkg);
  t.equal(install.status, 0, 'npm install --omit=dev exits 0 (no build step: dist/ is in the package)', {
    stderr: install.stderr,
  });
  const bin = join(pkg, 'bin', 'influencer-node.js');
  t.ok(statSync(bin).mode & 0o111, 'the bin is executable');
  const env = cleanEnv({ HOME: process.env.HOME ?? '' });
  const version = spawnSync(bin, ['--version'], { cwd: dir, env, encoding: 'utf8' });
  t.equal(version.status, 0, 'influencer-node --version', { stderr: version.stderr });
  t.equal(version.stdout.trim(), VERSION);
  const check = spawnSync(bin, ['setup', '--check'], { cwd: dir, env, encoding: 'utf8', timeout: 60_000 });
  t.equal(check.status, 0, 'setup --check finds redis-server and FerretDB', {
    stdout: check.stdout,
    stderr: check.stderr,
  });
  t.match(check.stdout, /^redis-server +\S+ +\//m);
  t.match(check.stdout, /^ferretdb +\S+ +\//m);

  // its API and dashboard, from the installed files (Lua scripts, dashboard, OpenAPI document)
  const svc = await services(t);
  const port = await freePort();
  const serve = spawn(bin, ['serve', '--port', String(port)], {
    cwd: dir,
    env: cleanEnv({ REDIS_URL: svc.redisUrl, MONGO_URL: svc.mongoUrl, MONGO_DB: svc.mongoDb, CLUSTER: svc.cluster }),
    stdio: 'ignore',
  });
  t.teardown(() => {
    if (serve.exitCode === null) serve.kill('SIGKILL');
  });
  const base = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${base}/readyz`).catch(() => null))?.status === 200, 60_000, 'serve ready');
  t.match(await (await fetch(`${base}/`)).text(), /<script src="\/vendor\/uPlot.iife.min.js">/, 'the dashboard');
  t.equal((await (await fetch(`${base}/api/openapi.json`)).json()).info.version, VERSION, 'the OpenAPI document');
  t.equal((await fetch(`${base}/api/v1/stats`)).status, 200, 'the API');
  serve.kill('SIGTERM');
  t.equal(await new Promise((r) => serve.once('exit', r)), 0, 'serve stops with exit 0');
});
