import t from 'tap';
import { ConfigError, loadConfig } from '../../../lib/ops/config.js';
import { maskUrl } from '../../../lib/shared/mask-url.js';
import { runCli } from '../../helpers/cli.js';

function configError(env: Record<string, string>): string {
  try {
    loadConfig({}, env);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return '(no error)';
}

t.test('defaults', async (t) => {
  const c = loadConfig({}, {});
  t.equal(c.redisUrl, 'redis://127.0.0.1:6379');
  t.equal(c.mongoUrl, 'mongodb://127.0.0.1:27017');
  t.equal(c.mongoDb, 'influencer');
  t.equal(c.mockstagramUrl, 'http://127.0.0.1:3000');
  t.equal(c.cluster, 'influencer');
  t.match(c.nodeId, /^[\w.-]+-\d+-[0-9a-f]{4}$/);
  t.equal(c.nodeWeight, 1);
  t.equal(c.pkMin, 1_000_000);
  t.equal(c.pkMax, 1_999_999);
  t.equal(c.intervalMs, 60_000);
  t.equal(c.heartbeatTtlMs, 10_000);
  t.equal(c.metricsPort, 0, 'metrics off by default');
  t.equal(c.metricsHost, '127.0.0.1');
  t.equal(c.logLevel, 'info');
});

t.test('DATA_DIR: XDG_DATA_HOME, else ~/.local/share, and a relative path made absolute', async (t) => {
  t.equal(loadConfig({}, { HOME: '/home/ana' }).dataDir, '/home/ana/.local/share/influencer-node');
  t.equal(loadConfig({}, { HOME: '/home/ana', XDG_DATA_HOME: '/data' }).dataDir, '/data/influencer-node');
  t.equal(loadConfig({ dataDir: 'demo-data' }, {}).dataDir, `${process.cwd()}/demo-data`);
});

t.test('CLOCK_SKEW_MS may be negative', async (t) => {
  t.equal(loadConfig({}, {}).clockSkewMs, 0);
  t.equal(loadConfig({}, { CLOCK_SKEW_MS: '-3000' }).clockSkewMs, -3000);
});

t.test('flags win over env, env over defaults', async (t) => {
  const c = loadConfig({ pkMin: '5' }, { PK_MIN: '3', PK_MAX: '9', CLUSTER: 'blue' });
  t.equal(c.pkMin, 5);
  t.equal(c.pkMax, 9);
  t.equal(c.cluster, 'blue');
});

t.test('each bad value names the setting, the value and what is allowed', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [
      { REDIS_URL: 'localhost:6379' },
      /^REDIS_URL="localhost:6379" is not valid: expected a URL starting with redis:\/\/ or rediss:\/\/$/,
    ],
    [{ MONGO_URL: 'http://x' }, /^MONGO_URL="http:\/\/x" is not valid: expected a URL starting with mongodb:\/\//],
    [{ MOCKSTAGRAM_URL: 'nope' }, /^MOCKSTAGRAM_URL="nope" is not valid/],
    [{ HEARTBEAT_TTL_MS: '0' }, /^HEARTBEAT_TTL_MS="0" is not valid: expected an integer ≥ 300$/],
    [{ HEARTBEAT_TTL_MS: '-5' }, /^HEARTBEAT_TTL_MS="-5" is not valid/],
    [{ PK_MIN: '1.5' }, /^PK_MIN="1.5" is not valid: expected an integer ≥ 0$/],
    [{ INTERVAL_MS: 'abc' }, /^INTERVAL_MS="abc" is not valid: expected an integer ≥ 100$/],
    [{ CONCURRENCY: '0' }, /^CONCURRENCY="0" is not valid: expected an integer ≥ 1$/],
    [{ NODE_WEIGHT: 'heavy' }, /^NODE_WEIGHT="heavy" is not valid: expected a number from 0.1 to 16$/],
    [{ NODE_WEIGHT: '1000' }, /^NODE_WEIGHT="1000" is not valid: expected a number from 0.1 to 16$/],
    [{ NODE_WEIGHT: '0.05' }, /^NODE_WEIGHT="0.05" is not valid/],
    [{ NODE_ID: 'has space' }, /^NODE_ID="has space" is not valid/],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL="loud" is not valid: expected one of fatal, error/],
    [{ METRICS_PORT: '70000' }, /^METRICS_PORT="70000" is not valid: expected an integer from 0 to 65535$/],
    [{ METRICS_PORT: 'http' }, /^METRICS_PORT="http" is not valid: expected an integer from 0 to 65535$/],
    [{ METRICS_HOST: 'http://x' }, /^METRICS_HOST="http:\/\/x" is not valid: expected an IP address or a host name$/],
    [{ CLOCK_SKEW_MS: '3s' }, /^CLOCK_SKEW_MS="3s" is not valid: expected an integer from -3600000 to 3600000$/],
    [{ PK_MIN: '10', PK_MAX: '5' }, /^PK_MIN=10 is greater than PK_MAX=5/],
    [{ PK_MIN: '0', PK_MAX: '3000000' }, /at most 2097152 pks/],
  ];
  for (const [env, message] of cases) {
    t.match(configError(env), message, JSON.stringify(env));
  }
});

t.test('passwords never appear in messages', async (t) => {
  t.equal(maskUrl('redis://:s3cret@host:6379/0'), 'redis://:***@host:6379/0');
  t.equal(maskUrl('mongodb://user:s3cret@db:27017/x'), 'mongodb://user:***@db:27017/x');
  t.equal(maskUrl('redis://host:6379'), 'redis://host:6379');
  const message = configError({ REDIS_URL: 'ftp://u:s3cret@h' });
  t.match(message, /^REDIS_URL="ftp:\/\/u:\*\*\*@h" is not valid/);
  t.notMatch(message, /s3cret/);
});

t.test('the CLI exits 2 with one line and no stack trace', async (t) => {
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['status'], { HEARTBEAT_TTL_MS: '0' }, /HEARTBEAT_TTL_MS="0" is not valid/],
    [['start', '--pk-min', '9', '--pk-max', '3'], {}, /PK_MIN=9 is greater than PK_MAX=3/],
    [['start', '--metrics-port', '-1'], {}, /--metrics-port="-1" is not valid: expected an integer from 0 to 65535/],
    [['status', '--redis-url', 'redis://:hunter2@nohost:1/'], { PK_MAX: 'x' }, /PK_MAX="x" is not valid/],
    [['frobnicate'], {}, /unknown command 'frobnicate'/],
    [['status', '--frob'], {}, /unknown option '--frob'/],
    [['mock', '--error-rate', '2'], {}, /--error-rate="2" is not valid: expected a number from 0 to 1/],
    [['show', 'abc'], {}, /pk "abc" is not valid/],
    [['show', '1000001', '--from', 'yesterday-ish'], {}, /--from="yesterday-ish" is not valid/],
  ];
  for (const [args, env, message] of cases) {
    const r = await runCli(args, env);
    t.equal(r.code, 2, `${args.join(' ')} exits 2`);
    t.match(r.stderr, message);
    t.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
    t.notMatch(r.stderr, /\bat .*\.js:\d+/, 'no stack trace');
    t.notMatch(r.stderr, /hunter2/);
  }
});

t.test('--help and --version', async (t) => {
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /start/);
  t.match(help.stdout, /status/);
  t.match(help.stdout, /Exit codes: 0 ok, 1 runtime failure .*, 2 usage or configuration error, 3 show: no data yet/);
  const version = await runCli(['--version']);
  t.equal(version.code, 0);
  t.match(version.stdout.trim(), /^\d+\.\d+\.\d+$/);
  // every command the top-level help lists, so a new one cannot ship without help and examples
  const commands = [...help.stdout.slice(help.stdout.indexOf('Commands:')).matchAll(/^ {2}([a-z][a-z-]*) /gm)]
    .map((m) => m[1])
    .filter((c) => c !== 'help');
  t.ok(
    ['start', 'status', 'show', 'mock'].every((c) => commands.includes(c)),
    `commands listed: ${commands.join(', ')}`,
  );
  for (const cmd of commands) {
    const r = await runCli([cmd, '--help']);
    t.equal(r.code, 0, `${cmd} --help`);
    t.match(r.stdout, /Examples:/, `${cmd} --help has examples`);
    t.match(r.stdout, new RegExp(`\\$ (\\S+=\\S+ )*influencer-node ${cmd}\\b`), `${cmd} --help shows it run`);
    const bad = await runCli([cmd, '--frobnicate']);
    t.equal(bad.code, 2, `${cmd} with an unknown flag exits 2`);
    t.equal(bad.stderr.trim().split('\n').length, 1, `${cmd}: one line: ${bad.stderr}`);
  }
  t.match(
    (await runCli(['start', '--help'])).stdout.replace(/\s+/g, ' '),
    /--metrics-port <value> port of the HTTP server for Prometheus .*\(default: 0, env: METRICS_PORT\)/,
    'the metrics settings are flags too, with their default and variable',
  );
});

t.test("help: the command's own flags first, then every setting with its variable and default", async (t) => {
  const { SETTINGS, shownDefault } = await import('../../../lib/ops/config.js');
  const help = (await runCli(['status', '--help'])).stdout;
  const own = help.indexOf('--json');
  const settings = help.indexOf('Settings (a flag wins over its environment variable');
  t.ok(own > 0 && settings > own, 'status --help: --json, --watch, --pk before the settings');
  t.ok(help.indexOf('--redis-url') > settings, 'the settings under their own heading');
  const flat = help.replace(/\s+/g, ' ');
  for (const s of Object.values(SETTINGS)) {
    const shown = shownDefault(s);
    const def = shown === '' ? '(empty)' : shown;
    t.ok(flat.includes(`(default: ${def}, env: ${s.env})`), `${s.env}: default ${def} and variable in the help`);
  }
});

t.test('a setting given by flag, environment and .env: the flag wins, then the environment, then .env', async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { spawnSync } = await import('node:child_process');
  const { BIN } = await import('../../kit/children.js');
  const dir = mkdtempSync(join(tmpdir(), 'dotenv-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '.env'), 'HEARTBEAT_TTL_MS=1\n');
  const run = (args: string[], env: Record<string, string>) =>
    spawnSync(process.execPath, [BIN, 'status', ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH, ...env },
      encoding: 'utf8',
    });
  t.match(run([], {}).stderr, /^influencer-node: HEARTBEAT_TTL_MS="1" is not valid/, '.env is read');
  t.match(
    run([], { HEARTBEAT_TTL_MS: '2' }).stderr,
    /HEARTBEAT_TTL_MS="2" is not valid/,
    'the environment wins over .env',
  );
  t.match(
    run(['--heartbeat-ttl-ms', '3'], { HEARTBEAT_TTL_MS: '2' }).stderr,
    /--heartbeat-ttl-ms="3" is not valid/,
    'the flag wins over the environment, and the error names the flag',
  );
});

t.test(
  '.env.example: every setting commented out with its default, in step with the table; copying it changes nothing',
  async (t) => {
    const { readFileSync } = await import('node:fs');
    const dotenv = (await import('dotenv')).default;
    const { SETTINGS, shownDefault } = await import('../../../lib/ops/config.js');
    const { renderEnvExample } = await import('../../../lib/ops/env-example.js');
    const envExample = readFileSync(new URL('../../../.env.example', import.meta.url), 'utf8');
    t.equal(envExample, renderEnvExample(), '.env.example is what the settings table makes (npm run env-example)');
    t.same(
      dotenv.parse(envExample),
      {},
      'no line sets anything: a copy of it as .env or /etc/influencer-node/env is inert',
    );
    const { nodeId: _copied, ...copied } = loadConfig({}, dotenv.parse(envExample));
    const { nodeId: _none, ...none } = loadConfig({}, {});
    t.same(copied, none, 'the defaults apply');
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const s of Object.values(SETTINGS)) {
      t.match(
        envExample,
        new RegExp(`^# ${s.help.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n# ${s.env}=`, 'm'),
        `${s.env}: meaning and default`,
      );
      const row = new RegExp(`^\\| \`${s.env}\` \\| \`--${s.flag}\` \\| ([^|]*) \\|`, 'm').exec(readme);
      t.ok(row, `${s.env} in the README table`);
      const shown = shownDefault(s);
      t.ok(
        row?.[1].includes(shown === '' ? '(empty)' : `\`${shown}\``),
        `${s.env}: the README shows its default ${shown}`,
      );
    }
  },
);
