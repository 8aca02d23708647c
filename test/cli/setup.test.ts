// `influencer-node setup [--check]` on machines made to lack redis-server and FerretDB (a sandbox
// PATH whose apt-get and go stand in for the real installers), the cases where it cannot install,
// and once, when the cache lacks it, the real FerretDB build.
import t, { type Test } from 'tap';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FERRET_PACKAGE, FERRET_VERSION, ferretCachePath, findFerret } from '../../lib/ops/embedded/binaries.js';
import { installFerret } from '../../lib/ops/embedded/install.js';
import { ensureServers } from '../../lib/ops/embedded/setup.js';
import { testsApt } from '../kit/servers.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { sandbox } from '../helpers/sandbox.js';

const NOBODY = { uid: 65534, gid: 65534 };

/** No stack trace, and every line of stderr is `influencer-node: …` or a quoted line of output. */
function clearFailure(t: Test, r: CliResult, what: string): void {
  t.equal(r.code, 1, `${what}: exit 1`);
  t.notMatch(r.stderr, /\bat .*\.[jt]s:\d+/, `${what}: no stack trace`);
  t.ok(
    r.stderr
      .trim()
      .split('\n')
      .every((l) => /^influencer-node: |^ {2}\| /.test(l)),
    `${what}: only its lines: ${r.stderr}`,
  );
}

t.test('servers found on PATH: --check says where, setup has nothing to do', async (t) => {
  const box = await sandbox(t, { present: ['redis-server', 'ferretdb'] });
  const check = await runCli(['setup', '--check'], box.env);
  t.equal(check.code, 0, 'exit 0: both there');
  t.match(check.stdout, new RegExp(`^redis-server +\\d+\\.\\d+\\.\\d+ +${box.root}/bin/redis-server$`, 'm'));
  t.match(check.stdout, new RegExp(`^ferretdb +v1\\.24\\.\\d+ +${box.root}/bin/ferretdb$`, 'm'));
  t.match(
    check.stdout,
    new RegExp(`^data +${box.root}/data/influencer-node `, 'm'),
    'the data directory, from XDG_DATA_HOME',
  );
  const setup = await runCli(['setup'], box.env);
  t.equal(setup.code, 0);
  t.match(setup.stdout, /^nothing to install$/m);
  t.same(box.calls(), [], 'no installer ran');
});

t.test(
  'servers missing: --check says how they would come; setup installs both; a second run does nothing',
  async (t) => {
    const box = await sandbox(t, { apt: true, go: 'builds' });
    const check = await runCli(['setup', '--check'], box.env);
    t.equal(check.code, 1, '--check: exit 1 while one is missing');
    t.match(
      check.stdout,
      /^redis-server +missing: `influencer-node setup` installs the Debian package redis-server with apt-get \(apt-get update, then apt-get install -y redis-server\)$/m,
    );
    t.match(
      check.stdout,
      /^ferretdb +missing: `influencer-node setup` builds FerretDB v1\.24\.2 with go1\.26\.8 into \S+ferretdb-v1\.24\.2-influencer-node-id-index \(a few minutes, once\)$/m,
    );
    t.same(
      box.calls().filter((c) => !/^go env/.test(c)),
      [],
      '--check installs nothing',
    );

    const setup = await runCli(['setup'], box.env, 60_000);
    t.equal(setup.code, 0, `setup: exit 0 ${setup.stderr}`);
    const out = setup.stdout;
    t.match(out, /^ {2}apt-get update … \d+\.\d s$/m, 'each step with its time');
    t.match(out, /^ {2}apt-get install -y redis-server … \d+\.\d s$/m);
    t.match(
      out,
      new RegExp(`^redis-server +\\d[\\d.]+ +${box.root}/bin/redis-server {2}\\(installed in \\d+\\.\\d s\\)$`, 'm'),
    );
    for (const step of [
      'download the module source',
      'copy it, write its version file, make lookups by _id use the _id index',
      'compile \\(go build',
      'check it starts',
    ]) {
      t.match(out, new RegExp(`^ {2}${step}.* … \\d+\\.\\d s$`, 'm'), `build step: ${step}`);
    }
    const target = ferretCachePath(box.env);
    t.equal(target, join(box.cache, 'influencer-node', `ferretdb-${FERRET_VERSION}-${FERRET_PACKAGE}`, 'ferretdb'));
    t.match(out, new RegExp(`^ferretdb +v1\\.24\\.2 +${target} {2}\\(installed in \\d+\\.\\d s\\)$`, 'm'));
    t.ok(existsSync(target), 'FerretDB in the cache');
    t.same(
      box.calls().filter((c) => /^apt-get/.test(c)),
      ['apt-get update', 'apt-get install -y redis-server'],
    );
    t.equal(box.calls().filter((c) => /^go build/.test(c)).length, 1, 'one go build');

    t.equal((await runCli(['setup', '--check'], box.env)).code, 0, '--check: exit 0 now');
    const calls = box.calls().length;
    const again = await runCli(['setup'], box.env);
    t.equal(again.code, 0);
    t.match(again.stdout, /^nothing to install$/m, 'a second run does nothing');
    t.equal(box.calls().length, calls, 'no installer ran the second time');
  },
);

t.test('setup says what apt-get will install before it runs it; APT_INSTALL=no runs none', async (t) => {
  const box = await sandbox(t, { apt: true, present: ['ferretdb'] });
  const no = await runCli(['setup'], { ...box.env, APT_INSTALL: 'no' });
  clearFailure(t, no, 'APT_INSTALL=no');
  t.match(
    no.stderr,
    /^influencer-node: redis-server is missing and APT_INSTALL=no: install it with `apt-get install redis-server`, then run this again$/m,
  );
  t.same(box.calls(), [], 'apt-get did not run');
  const setup = await runCli(['setup'], box.env, 60_000);
  t.equal(setup.code, 0);
  const said = setup.stdout.indexOf('installing the Debian package redis-server with apt-get');
  t.ok(said >= 0 && said < setup.stdout.indexOf('apt-get update …'), 'what it installs is said first');
});

t.test('npm test runs apt-get only when CI is set or APT_INSTALL=yes', async (t) => {
  const box = await sandbox(t, { apt: true, present: ['ferretdb'] });
  const env = { ...box.env, CI: '' };
  const wanted = { redis: true, ferret: false };
  const write = (): void => undefined;
  await t.rejects(
    ensureServers(write, env, wanted, testsApt(env)),
    {
      lines: [
        /^redis-server is missing and npm test runs apt-get only when CI is set or APT_INSTALL=yes: .*APT_INSTALL=yes/,
      ],
    },
    'no CI, no setting: refused in one line',
  );
  t.same(box.calls(), [], 'apt-get did not run');
  const ci = { ...box.env, CI: 'true' };
  t.ok((await ensureServers(write, ci, wanted, testsApt(ci))).redis, 'CI=true: installed');
  t.same(box.calls(), ['apt-get update', 'apt-get install -y redis-server']);
});

t.test('installers are found by absolute path, never in node_modules/.bin or a relative PATH entry', async (t) => {
  const box = await sandbox(t, { apt: true, present: ['ferretdb'] });
  const shadow = join(box.root, 'node_modules', '.bin');
  mkdirSync(shadow, { recursive: true });
  for (const tool of ['apt-get', 'redis-server', 'bash']) {
    writeFileSync(join(shadow, tool), `#!/bin/sh\necho "shadow ${tool}" >> ${join(box.root, 'calls')}\n`, {
      mode: 0o755,
    });
  }
  const env = { ...box.env, PATH: `${shadow}:node_modules/.bin:.:${box.env.PATH}` };
  const setup = await runCli(['setup'], env, 60_000);
  t.equal(setup.code, 0, setup.stderr);
  t.same(box.calls(), ['apt-get update', 'apt-get install -y redis-server'], 'the real apt-get, not the shadow');
  t.match(setup.stdout, new RegExp(`^redis-server +[\\d.]+ +${box.root}/bin/redis-server `, 'm'));
});

t.test('two setups at once: one builds FerretDB, the other waits for it and uses its binary', async (t) => {
  const box = await sandbox(t, { present: ['redis-server'], go: 'builds', buildSeconds: 2 });
  const [a, b] = await Promise.all([runCli(['setup'], box.env, 60_000), runCli(['setup'], box.env, 60_000)]);
  t.equal(a.code, 0);
  t.equal(b.code, 0);
  t.equal(box.calls().filter((c) => /^go build/.test(c)).length, 1, 'built once');
  t.match(
    a.stdout + b.stdout,
    /another process \(pid \d+\) is building it: waiting … \d+\.\d s/,
    'the second one says it waits',
  );
  t.notOk(existsSync(`${ferretCachePath(box.env)}.partial`), 'no partial binary left');
});

t.test('not root: redis-server is not installed; the one command to run is named', async (t) => {
  const box = await sandbox(t, { apt: true });
  const r = await runCli(['setup'], box.env, 30_000, NOBODY);
  clearFailure(t, r, 'not root');
  t.match(
    r.stderr,
    /^influencer-node: redis-server is missing: install it with `sudo apt-get install redis-server`, then run this again$/m,
  );
  t.same(box.calls(), [], 'apt-get did not run');
});

t.test('no apt-get, no Go: one line each, before anything is installed', async (t) => {
  const box = await sandbox(t);
  const r = await runCli(['setup'], box.env);
  clearFailure(t, r, 'nothing to install with');
  t.match(
    r.stderr,
    /^influencer-node: redis-server is missing and there is no apt-get here: install Redis ≥ 6 with your package manager/m,
  );
  t.match(
    r.stderr,
    /^influencer-node: FerretDB v1\.24\.2 is missing and building it needs Go, which is not on PATH: install Go ≥ 1\.24 from https:\/\/go\.dev\/dl\//m,
  );
  t.equal(r.stderr.trim().split('\n').length, 2, 'two lines');
});

t.test('a FerretDB build that fails: its last lines, exit 1, nothing left in the cache', async (t) => {
  const box = await sandbox(t, { present: ['redis-server'], go: 'fails' });
  const r = await runCli(['setup'], box.env, 60_000);
  clearFailure(t, r, 'build fails');
  t.match(r.stdout, /^ {2}compile \(go build.* … failed after \d+\.\d s$/m, 'the step that failed');
  t.match(
    r.stderr,
    /^influencer-node: building FerretDB v1\.24\.2 failed \(exit code 1\); the last lines of the build:$/m,
  );
  t.match(
    r.stderr,
    /^ {2}\| internal\/handler\/msg_find\.go:42:7: undefined: sqlite\.Open$/m,
    "the compiler's own words",
  );
  t.notOk(existsSync(ferretCachePath(box.env)), 'no binary in the cache');
  t.notOk(existsSync(`${ferretCachePath(box.env)}.partial`), 'nor a partial one');
  t.notOk(
    existsSync(`${join(box.cache, 'influencer-node', `ferretdb-${FERRET_VERSION}-${FERRET_PACKAGE}`)}.lock`),
    'the build lock is released',
  );
});

t.test('a cache directory that cannot be written', async (t) => {
  const box = await sandbox(t, { present: ['redis-server'], go: 'builds' });
  writeFileSync(join(box.root, 'a-file'), '');
  const r = await runCli(['setup'], { ...box.env, XDG_CACHE_HOME: join(box.root, 'a-file', 'cache') });
  clearFailure(t, r, 'cache not writable');
  t.match(
    r.stderr,
    /^influencer-node: cannot write the cache directory \S+ \(ENOTDIR: not a directory\): set XDG_CACHE_HOME to a writable directory$/m,
  );
});

t.test('FerretDB built for real with Go into the cache, when the cache lacks it', async (t) => {
  const target = ferretCachePath();
  if ((await findFerret()).found?.path === target) {
    t.pass(`cached at ${target}: built by an earlier run`);
    return;
  }
  // minutes on a fresh machine: the module and its dependencies are downloaded and compiled
  t.setTimeout(40 * 60_000);
  let progress = '';
  const built = await installFerret((text) => {
    progress += text;
  });
  t.match(progress, /^ {2}compile \(go build.* … \d+\.\d s$/m, `the compile step, timed:\n${progress}`);
  t.equal(built.path, target, 'built into the cache');
  t.equal(built.version, FERRET_VERSION, `its --version says ${FERRET_VERSION}`);
  t.equal((await findFerret()).found?.path, target, 'found there first from now on');
});
