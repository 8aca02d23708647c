// What operators rely on: the systemd units verify, /metrics parses and moves while a node runs,
// /healthz and /readyz say the right thing through a MongoDB outage and a stop, and every command
// keeps its exit codes.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readiness, type NodeProbe } from '../../lib/ops/metrics.js';
import { closeLagS } from '../../lib/ops/storage-probe.js';
import type { StorageLayout } from '../../lib/storage/format/layout.js';
import { runCli, spawnCli } from '../helpers/cli.js';
import { ROOT, waitExit, stopChild } from '../kit/children.js';
import { startCluster } from '../helpers/cluster.js';
import { sleep, until } from '../kit/wait.js';
import { freePort, startFerret } from '../kit/servers.js';

const DEPLOY = join(ROOT, 'deploy');
const INSTALL_DIR = '/opt/influencer-node';

function which(bin: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The unit's `Key=value` lines (comments and sections dropped), every value of a repeated key kept. */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

t.test('systemd units: systemd-analyze verify passes, hardening in place, the user is defined', async (t) => {
  const analyze = which('systemd-analyze');
  if (!analyze) {
    t.fail(
      "systemd-analyze not found: install Debian's `systemd` package (apt-get install -y systemd); these units must be verified, not skipped",
    );
    return;
  }
  const units = readdirSync(join(DEPLOY, 'systemd'))
    .filter((f) => f.endsWith('.service'))
    .sort();
  t.same(units, ['influencer-node-mock.service', 'influencer-node-serve.service', 'influencer-node@.service']);

  // verify checks that ExecStart exists and is executable: point the install dir at this checkout
  const dir = mkdtempSync(join(tmpdir(), 'inode-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const root = ROOT.replace(/\/+$/, '');
  const copies = units.map((unit) => {
    const text = readFileSync(join(DEPLOY, 'systemd', unit), 'utf8');
    t.match(
      text,
      new RegExp(`^ExecStart=${INSTALL_DIR}/bin/influencer-node\\.js `, 'm'),
      `${unit} runs the installed CLI`,
    );
    const file = join(dir, unit);
    writeFileSync(file, text.split(INSTALL_DIR).join(root));
    return file;
  });
  const verify = spawnSync(analyze, ['verify', ...copies], { encoding: 'utf8' });
  t.equal(verify.status, 0, 'systemd-analyze verify exits 0', { stderr: verify.stderr });
  const ours = (verify.stderr + verify.stdout)
    .split('\n')
    .filter((l) => units.some((u) => l.includes(u.replace('@.service', '@'))));
  t.same(ours, [], 'no warning about our units (unknown keys, bad values, ...)');

  for (const file of copies) {
    const security = spawnSync(analyze, ['security', '--offline=true', '--no-pager', file], { encoding: 'utf8' });
    const level = /Overall exposure level for .*: ([\d.]+)/.exec(security.stdout);
    t.ok(
      level && Number(level[1]) <= 2.5,
      `${file}: exposure ≤ 2.5 (systemd-analyze security): ${level?.[1] ?? security.stderr}`,
    );
  }

  const d = directives(readFileSync(join(DEPLOY, 'systemd', 'influencer-node@.service'), 'utf8'));
  const one = (key: string): string | undefined => d.get(key)?.at(-1);
  t.ok(d.get('Environment')?.includes('NODE_ID=%H-%i'), 'NODE_ID from host and instance');
  t.ok(d.get('EnvironmentFile')?.includes('/etc/influencer-node/env'), 'shared EnvironmentFile');
  t.equal(
    one('Type'),
    'notify',
    'systemd waits for READY=1: systemctl start and restart return once the node is active',
  );
  t.equal(one('NotifyAccess'), 'main');
  t.ok(parseInt(one('WatchdogSec') ?? '0', 10) > 0, 'a watchdog the node feeds with WATCHDOG=1');
  t.ok(parseInt(one('TimeoutStartSec') ?? '0', 10) > 0, 'a bound on the wait for READY=1');
  const serve = directives(readFileSync(join(DEPLOY, 'systemd', 'influencer-node-serve.service'), 'utf8'));
  t.equal(serve.get('Type')?.at(-1), 'notify', 'serve too: READY=1 once it listens');
  t.match(
    serve.get('ExecStart')?.at(-1) ?? '',
    / serve$/,
    'serve takes SERVE_HOST and SERVE_PORT from its environment',
  );
  t.equal(one('User'), 'influencer');
  t.equal(one('Restart'), 'on-failure');
  t.equal(one('RestartPreventExitStatus'), '2', 'a config error is not restarted in a loop');
  t.equal(one('KillSignal'), 'SIGTERM');
  t.ok(['mixed', 'process'].includes(one('KillMode') ?? ''), 'KillMode mixed or process');
  // graceful stop: handover ≤ TTL + 2 s (12 s default), then the flush, which the node bounds by max(30 s, 3 × INTERVAL_MS)
  t.ok(parseInt(one('TimeoutStopSec') ?? '0', 10) >= 90, 'TimeoutStopSec leaves time for handover and flush');
  for (const [key, value] of Object.entries({
    NoNewPrivileges: 'yes',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    PrivateDevices: 'yes',
    ProtectKernelTunables: 'yes',
    ProtectKernelModules: 'yes',
    ProtectControlGroups: 'yes',
    RestrictNamespaces: 'yes',
    LockPersonality: 'yes',
    MemoryDenyWriteExecute: 'no',
    SystemCallArchitectures: 'native',
    CapabilityBoundingSet: '',
    RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
  }))
    t.equal(one(key), value, `${key}=${value}`);

  // the user, created by systemd-sysusers in a scratch root (nothing on this machine changes)
  const sysusers = which('systemd-sysusers');
  if (!sysusers) {
    t.fail("systemd-sysusers not found: install Debian's `systemd` package");
    return;
  }
  const scratch = join(dir, 'root');
  mkdirSync(join(scratch, 'etc'), { recursive: true });
  const made = spawnSync(sysusers, [`--root=${scratch}`, join(DEPLOY, 'sysusers.d', 'influencer-node.conf')], {
    encoding: 'utf8',
  });
  t.equal(made.status, 0, 'systemd-sysusers accepts the file', { stderr: made.stderr });
  t.match(
    readFileSync(join(scratch, 'etc', 'passwd'), 'utf8'),
    /^influencer:x:\d+:\d+:[^:]*:\/nonexistent:\/usr\/sbin\/nologin$/m,
    'a system user without home or shell',
  );
});

interface Scrape {
  status: number;
  type: string;
  text: string;
  samples: Map<string, number>;
  types: Map<string, string>;
}

function get(url: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${url}: no answer in 10 s`)));
    req.end();
  });
}

/** A small parser of the Prometheus text format: `name{labels} value` per sample, `# TYPE` per family. */
function parseMetrics(text: string): { samples: Map<string, number>; types: Map<string, string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# HELP')) continue;
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      types.set(type[1], type[2]);
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`);
    samples.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return { samples, types };
}

async function scrape(base: string): Promise<Scrape> {
  const r = await get(`${base}/metrics`);
  return { status: r.status, type: r.type, text: r.body, ...parseMetrics(r.body) };
}

async function status(url: string): Promise<number> {
  try {
    return (await get(url)).status;
  } catch {
    return 0;
  }
}

function portClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(true));
  });
}

t.test('metrics: Prometheus text from a running node, with the named figures moving between scrapes', async (t) => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const c = await startCluster(t, {
    pks: 200,
    intervalMs: 1000,
    ttlMs: 1500,
    extraEnv: { METRICS_PORT: String(port) },
  });
  const node = c.spawnNode('m1');
  await until(async () => (await status(`${base}/readyz`)) === 200, 60_000, 'the node ready');
  await until(
    async () => ((await scrape(base)).samples.get('influencer_samples_stored_total') ?? 0) > 0,
    30_000,
    'samples stored',
  );

  const first = await scrape(base);
  t.equal(first.status, 200);
  t.match(first.type, /^text\/plain; version=0\.0\.4/);
  const s = first.samples;
  for (const [name, type] of Object.entries({
    influencer_samples_stored_total: 'counter',
    influencer_sample_lateness_seconds: 'histogram',
    influencer_missed_intervals_total: 'counter',
    influencer_fetch_errors_total: 'counter',
    influencer_write_batches_total: 'counter',
    influencer_write_batch_duration_seconds: 'histogram',
    influencer_write_buffer_samples: 'gauge',
    influencer_duplicates_total: 'counter',
    influencer_dropped_samples_total: 'counter',
    influencer_owned_pks: 'gauge',
    influencer_ring_members: 'gauge',
    influencer_redis_up: 'gauge',
    influencer_mongo_up: 'gauge',
    influencer_ready: 'gauge',
    influencer_member_state: 'gauge',
    process_cpu_user_seconds_total: 'counter',
    process_resident_memory_bytes: 'gauge',
    nodejs_eventloop_lag_seconds: 'gauge',
  }))
    t.equal(first.types.get(name), type, `${name} is a ${type}`);
  t.equal(s.get('influencer_owned_pks'), 200, 'one node owns every pk');
  t.equal(s.get('influencer_ring_members'), 1);
  t.equal(s.get('influencer_redis_up'), 1);
  t.equal(s.get('influencer_mongo_up'), 1);
  t.equal(s.get('influencer_ready'), 1);
  t.equal(s.get('influencer_member_state{state="active"}'), 1);
  t.equal(s.get('influencer_member_state{state="leaving"}'), 0);
  t.equal(s.get('influencer_fetch_errors_total{kind="timeout"}'), 0, 'fetch errors by kind, zero included');
  t.equal(s.get('influencer_totals_state{state="ready"}'), 1, 'the running totals are ready');
  t.equal(s.get('influencer_totals_state{state="rebuilding"}'), 0);
  t.ok(Number.isFinite(s.get('influencer_period_close_lag_seconds')), 'the close lag is read from Redis');
  t.ok((s.get('influencer_write_batches_total') ?? 0) > 0, 'batches written');
  t.equal(
    s.get('influencer_sample_lateness_seconds_count'),
    s.get('influencer_samples_stored_total'),
    'one lateness observation per stored sample',
  );
  t.equal(
    s.get('influencer_sample_lateness_seconds_bucket{le="+Inf"}'),
    s.get('influencer_sample_lateness_seconds_count'),
  );
  t.equal(s.get('influencer_write_batch_duration_seconds_count'), s.get('influencer_write_batches_total'));
  t.ok(
    [...s.keys()].some((k) => k.startsWith('influencer_node_info{') && k.includes('node="m1"')),
    'info metric names the node',
  );

  await until(
    async () => (await scrape(base)).samples.get('influencer_last_interval_due_pks') === 200,
    30_000,
    'an interval in which every owned pk was due',
  );
  const complete = (await scrape(base)).samples;
  t.ok(complete.get('influencer_last_interval_on_time_pks')! <= 200, 'on time: at most the due ones');
  const stored = s.get('influencer_samples_stored_total')!;
  await until(
    async () => ((await scrape(base)).samples.get('influencer_samples_stored_total') ?? 0) > stored,
    30_000,
    'more samples at a later scrape',
  );
  const second = await scrape(base);
  t.ok(second.samples.get('influencer_samples_stored_total')! > stored, 'samples stored increased between two scrapes');
  t.ok(
    second.samples.get('influencer_write_batches_total')! >= s.get('influencer_write_batches_total')!,
    'batches never go down',
  );

  t.equal((await get(`${base}/nope`)).status, 404);
  t.equal((await get(`${base}/metrics`, 'POST')).status, 405);
  t.equal(await stopChild(node), 0, 'SIGTERM: exit 0');
  t.ok(await portClosed(port), 'the metrics port is closed after the stop');
});

t.test(
  'health and readiness: 200 when active and writing, 503 while MongoDB is down, 200 again; healthz 200 throughout',
  async (t) => {
    const ferret = await startFerret();
    t.teardown(() => ferret.stop());
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const c = await startCluster(t, {
      pks: 100,
      intervalMs: 1000,
      ttlMs: 1500,
      mongoUrl: ferret.url,
      extraEnv: { METRICS_PORT: String(port) },
    });
    const node = c.spawnNode('r1');
    await until(async () => (await status(`${base}/healthz`)) === 200, 60_000, 'healthz answering');
    const health: number[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        health.push(await status(`${base}/healthz`));
        await sleep(200);
      }
    })();

    await until(async () => (await status(`${base}/readyz`)) === 200, 60_000, 'ready: active and writing');
    t.equal((await get(`${base}/readyz`)).body, 'ready\n');

    await ferret.down();
    await until(async () => (await status(`${base}/readyz`)) === 503, 60_000, 'not ready while MongoDB is down');
    const down = await get(`${base}/readyz`);
    t.match(down.body, /^not ready: .*(MongoDB unreachable|the last write failed)/, `says why: ${down.body}`);
    t.equal((await scrape(base)).samples.get('influencer_ready'), 0, 'influencer_ready 0 too');
    await sleep(1500);
    t.equal(await status(`${base}/readyz`), 503, 'still not ready while MongoDB stays down');
    t.equal(await status(`${base}/healthz`), 200, 'alive while MongoDB is down');
    t.equal(node.exitCode, null, 'the node keeps running');

    await ferret.up();
    await until(async () => (await status(`${base}/readyz`)) === 200, 90_000, 'ready again once MongoDB is back');
    t.equal((await scrape(base)).samples.get('influencer_mongo_up'), 1);

    watching = false;
    await watcher;
    t.ok(health.length > 0, `healthz polled ${health.length} times`);
    t.same([...new Set(health)], [200], 'healthz 200 throughout');

    t.equal(await stopChild(node), 0, 'SIGTERM: exit 0');
    t.ok(await portClosed(port), 'the port is closed after SIGTERM');
  },
);

t.test(
  'period close lag: 0 while every ended period is closed, else the time since the oldest open one ended',
  async (t) => {
    const hour = 3_600_000;
    const layout = { bucketMs: hour, firstPeriod: 10 * hour } as StorageLayout;
    const now = 13 * hour + 120_000; // periods 10, 11 and 12 have ended
    t.equal(closeLagS(12 * hour, layout, now), 0, 'the newest ended period is closed');
    t.equal(closeLagS(11 * hour, layout, now), 120, 'period 12 ended 2 minutes ago, open');
    t.equal(closeLagS(null, layout, now), 2 * 3600 + 120, 'none closed: since the end of the first period');
  },
);

t.test('readiness: each reason on its own', async (t) => {
  const ok: NodeProbe = {
    owned: 1,
    state: 'active',
    ringMembers: 1,
    redisUp: true,
    mongoUp: true,
    writer: {
      stored: 1,
      duplicates: 0,
      rejected: 0,
      dropped: 0,
      batches: 1,
      failedFlushes: 0,
      lastBatchMs: 1,
      length: 0,
      failing: false,
    },
  };
  t.same(readiness(ok), { ready: true, reasons: [] });
  t.same(readiness({ ...ok, writer: undefined }), { ready: true, reasons: [] }, 'nothing written yet is fine');
  t.same(readiness({ ...ok, state: undefined }).reasons, ['not joined yet']);
  t.same(readiness({ ...ok, state: 'joining' }).reasons, ['member state joining']);
  t.same(readiness({ ...ok, state: 'leaving' }).reasons, ['member state leaving']);
  t.same(readiness({ ...ok, mongoUp: false }).reasons, ['MongoDB unreachable']);
  t.same(readiness({ ...ok, writer: { ...ok.writer!, failing: true } }).reasons, ['the last write failed']);
  t.same(
    readiness({ ...ok, redisUp: false }),
    { ready: true, reasons: [] },
    'Redis alone does not decide: a failed write does',
  );
});

t.test(
  'exit codes at run time: 0 after SIGTERM, 1 on a runtime failure (one line, stack only at LOG_LEVEL=debug), 2 on a bad setting',
  async (t) => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    t.teardown(() => busy.close());
    const busyPort = (busy.address() as { port: number }).port;

    const mockPort = await freePort();
    const mock = spawnCli(['mock', '--port', String(mockPort)]);
    await until(async () => !(await portClosed(mockPort)), 30_000, 'the mock listening');
    mock.kill('SIGTERM');
    t.equal(await waitExit(mock), 0, 'mock: SIGTERM exits 0');

    const taken = await runCli(['mock', '--port', String(busyPort)]);
    t.equal(taken.code, 1, 'mock on a port in use exits 1');
    t.equal(taken.stderr.trim().split('\n').length, 1, `one line: ${taken.stderr}`);
    t.match(taken.stderr, /EADDRINUSE/);
    const debug = await runCli(['mock', '--port', String(busyPort), '--log-level', 'debug']);
    t.equal(debug.code, 1);
    t.match(debug.stderr, /\n\s+at .*:\d+/, '--log-level debug adds the stack trace');

    const metrics = await runCli(['start', '--metrics-port', String(busyPort)], {
      PK_MIN: '1',
      PK_MAX: '5',
      REDIS_URL: 'redis://127.0.0.1:1',
      MONGO_URL: 'mongodb://127.0.0.1:1',
    });
    t.equal(metrics.code, 1, 'start with its metrics port in use exits 1 at once');
    t.match(
      metrics.stderr,
      /^influencer-node: cannot serve metrics on 127\.0\.0\.1:\d+ \(METRICS_HOST, METRICS_PORT\): listen EADDRINUSE/m,
    );
    t.notMatch(metrics.stderr, /\bat .*\.js:\d+/, 'no stack trace');

    const bad = await runCli(['start'], { METRICS_PORT: '70000' });
    t.equal(bad.code, 2, 'a bad METRICS_PORT exits 2');
    t.equal(bad.stderr, 'influencer-node: METRICS_PORT="70000" is not valid: expected an integer from 0 to 65535\n');
  },
);
