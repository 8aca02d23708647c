// A real Prometheus (Debian's `prometheus` package) against the product: the rules pass
// `promtool check rules` and their unit tests (`promtool test rules`), a Prometheus scrapes a running
// node and `serve`, evaluates every rule without error, and answers every query of the Grafana
// dashboard; the dashboard's influencer panels read the read API as the Infinity data source would.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnCli } from '../helpers/cli.js';
import { ROOT, stopChild } from '../kit/children.js';
import { startCluster } from '../helpers/cluster.js';
import { until } from '../kit/wait.js';
import { freePort } from '../kit/servers.js';

const RULES = join(ROOT, 'deploy', 'prometheus', 'influencer-node.rules.yml');
const RULE_TESTS = join(ROOT, 'test', 'prometheus', 'influencer-node.rules.test.yml');
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'influencer-node.json');
const NOT_INSTALLED = "not found: install Debian's `prometheus` package (apt-get install -y prometheus); .ci/run does";

function found(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
}

t.test('promtool: the rules file is valid and its unit tests pass', async (t) => {
  if (!found('promtool')) return void t.fail(`promtool ${NOT_INSTALLED}`);
  const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  t.equal(check.status, 0, 'promtool check rules exits 0', { output: check.stdout + check.stderr });
  t.match(check.stdout, /SUCCESS: \d+ rules found/);
  const unit = spawnSync('promtool', ['test', 'rules', RULE_TESTS], { encoding: 'utf8' });
  t.equal(unit.status, 0, 'promtool test rules exits 0', { output: unit.stdout + unit.stderr });
  t.match(unit.stdout, /SUCCESS/);
});

interface Panel {
  type: string;
  title: string;
  datasource?: { type: string };
  targets?: Array<{ expr?: string; url?: string; root_selector?: string; columns?: Array<{ selector: string }> }>;
}

t.test('a real Prometheus scrapes a node and serve, evaluates the rules, answers the dashboard', async (t) => {
  if (!found('prometheus')) return void t.fail(`prometheus ${NOT_INSTALLED}`);
  const pks = 100;
  const pk = 1_000_042;
  const [metricsPort, servePort, promPort] = [await freePort(), await freePort(), await freePort()];
  const c = await startCluster(t, {
    pks,
    intervalMs: 1000,
    ttlMs: 1500,
    extraEnv: { METRICS_PORT: String(metricsPort) },
  });
  const node = c.spawnNode('p1');
  const serve = spawnCli(['serve', '--port', String(servePort)], c.env);
  const api = `http://127.0.0.1:${servePort}`;
  await until(
    async () => (await fetch(`${api}/api/v1/influencers/${pk}`).catch(() => null))?.status === 200,
    60_000,
    'the pk stored and served',
  );

  const dir = mkdtempSync(join(tmpdir(), 'prometheus-'));
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    `global: { scrape_interval: 1s, evaluation_interval: 1s }
rule_files: ['${RULES}']
scrape_configs:
  - job_name: influencer-node
    static_configs: [{ targets: ['127.0.0.1:${metricsPort}'] }]
  - job_name: influencer-node-serve
    static_configs: [{ targets: ['127.0.0.1:${servePort}'] }]
`,
  );
  const prometheus = spawn(
    'prometheus',
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let promLog = '';
  prometheus.stderr.on('data', (d) => {
    promLog += d;
  });
  t.teardown(async () => {
    if (prometheus.exitCode === null) {
      prometheus.kill('SIGTERM');
      await new Promise((r) => prometheus.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });
  const prom = `http://127.0.0.1:${promPort}`;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Prometheus's JSON answers
  const promApi = async (path: string): Promise<any> => (await (await fetch(`${prom}${path}`)).json()).data;
  const query = async (q: string) => {
    const r = await (await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(q)}`)).json();
    return r as {
      status: string;
      error?: string;
      data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
    };
  };
  await until(
    async () => (await fetch(`${prom}/-/ready`).catch(() => null))?.status === 200,
    60_000,
    `Prometheus ready ${promLog}`,
  );

  await until(async () => (await query('influencer_owned_pks')).data.result.length > 0, 60_000, 'the node scraped');
  const owned = (await query('influencer_owned_pks')).data.result[0];
  t.match(owned.metric, { job: 'influencer-node', instance: `127.0.0.1:${metricsPort}` });
  t.equal(owned.value[1], String(pks), "the query API returns the node's figure: it owns every pk");
  await until(
    async () => (await query('influencer_samples_stored_total > 0')).data.result.length > 0,
    60_000,
    'samples counted',
  );
  await until(
    async () =>
      (await query('influencer_api_requests_total{route="/api/v1/influencers/{pk}",status="200"}')).data.result.length >
      0,
    60_000,
    "serve's request counts scraped",
  );
  const targets = (await promApi('/api/v1/targets')).activeTargets as Array<{
    labels: { job: string };
    health: string;
  }>;
  t.same(
    targets.map((x) => `${x.labels.job} ${x.health}`).sort(),
    ['influencer-node up', 'influencer-node-serve up'],
    'both targets up',
  );

  // every rule evaluated against the real series, none failing
  await until(
    async () =>
      (await promApi('/api/v1/rules')).groups.every((g: { rules: Array<{ lastEvaluation: string }> }) =>
        g.rules.every((r) => !r.lastEvaluation.startsWith('0001')),
      ),
    60_000,
    'every rule evaluated',
  );
  const rules = (await promApi('/api/v1/rules')).groups.flatMap((g: { rules: unknown[] }) => g.rules) as Array<{
    name: string;
    health: string;
    lastError?: string;
  }>;
  t.ok(rules.length >= 20, `${rules.length} rules loaded`);
  t.same(
    rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`),
    [],
    'every rule healthy',
  );
  await until(async () => (await query('job:influencer_owned_pks:sum')).data.result.length > 0, 30_000, 'a recording');
  t.equal((await query('job:influencer_owned_pks:sum')).data.result[0].value[1], String(pks), 'recorded: pks owned');
  await until(
    async () => (await query('job:influencer_on_time:ratio')).data.result.length > 0,
    30_000,
    'on-time ratio',
  );
  t.ok(Number((await query('job:influencer_on_time:ratio')).data.result[0].value[1]) > 0, 'the on-time share recorded');
  const firing = (await promApi('/api/v1/alerts')).alerts.filter((a: { state: string }) => a.state === 'firing');
  t.same(firing, [], 'a healthy cluster raises no alert');

  // the dashboard: every Prometheus query valid and answered; the influencer panels read the API
  for (const q of ['rate(influencer_samples_stored_total[1m])', 'rate(influencer_api_requests_total[1m])'])
    await until(async () => (await query(q)).data.result.length > 0, 30_000, `${q}: two scrapes`);
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    panels: Panel[];
    templating: { list: Array<{ name: string }> };
  };
  t.same(
    dashboard.templating.list.map((v) => v.name),
    ['prometheus', 'infinity', 'job', 'serve_job', 'api', 'pk'],
  );
  const panels = dashboard.panels.filter((p) => p.type !== 'row');
  const promPanels = panels.filter((p) => p.datasource?.type === 'prometheus');
  t.ok(promPanels.length >= 15, `${promPanels.length} cluster panels`);
  const empty: string[] = [];
  for (const p of promPanels) {
    for (const target of p.targets ?? []) {
      const expr = target.expr!.replace(/\$__rate_interval/g, '1m').replace(/\$(serve_job|job)/g, '.+');
      const r = await query(expr);
      t.equal(r.status, 'success', `${p.title}: ${expr}`, { error: r.error });
      if (r.data.result.length === 0) empty.push(p.title);
    }
  }
  for (const title of [
    'Nodes up',
    'Pks owned',
    'Samples stored /s',
    'Owned pks by node',
    'Requests /s by route and status',
  ])
    t.notOk(empty.includes(title), `${title}: data`);

  const now = Date.now();
  const infinityPanels = panels.filter((p) => p.datasource?.type === 'yesoreyeram-infinity-datasource');
  t.ok(infinityPanels.length >= 2, `${infinityPanels.length} panels of one influencer`);
  for (const p of infinityPanels) {
    const target = p.targets![0];
    const url = target
      .url!.replace('${api}', api)
      .replace('${pk}', String(pk))
      .replace('${__from}', String(now - 3_600_000))
      .replace('${__to}', String(now));
    const res = await fetch(url);
    t.equal(res.status, 200, `${p.title}: ${url}`);
    const body = await res.json();
    const rows = target.root_selector ? body[target.root_selector] : [body];
    t.ok(Array.isArray(rows) && rows.length > 0, `${p.title}: rows at "${target.root_selector}"`);
    for (const col of target.columns ?? []) t.ok(col.selector in rows[0], `${p.title}: column ${col.selector}`);
  }

  t.equal(await stopChild(serve), 0);
  t.equal(await stopChild(node), 0);
});
