// The CLI in scripts: --watch --json is NDJSON, escapes only reach a terminal (and not with NO_COLOR),
// a reader that goes away ends the command quietly, setup --check --json.
import t from 'tap';
import { spawn } from 'node:child_process';
import { cleanEnv, runCli } from '../helpers/cli.js';
import { BIN, ROOT } from '../kit/children.js';
import { services } from '../kit/servers.js';

/** The escape character that starts every terminal control sequence (colour, clearing the screen). */
const ESC = String.fromCharCode(27);
const CLEAR_SCREEN = `${ESC}[H${ESC}[2J`;
const COLOUR = new RegExp(`${ESC}\\[\\d+m`);

/** Runs `influencer-node args` under a pseudo-terminal (util-linux `script`) for `ms`, then stops it. */
function inTerminal(args: string[], env: Record<string, string>, ms: number): Promise<string> {
  const command = [process.execPath, BIN, ...args].map((a) => `'${a}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qfec', command, '/dev/null'], { env: cleanEnv(env), cwd: ROOT });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    setTimeout(() => child.kill('SIGINT'), ms);
    child.on('exit', () => resolve(out));
  });
}

/** Runs a shell pipeline from the checkout; resolves to its exit status and output. */
function shell(
  command: string,
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', command], { env: cleanEnv({ ...env, BIN }), cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('status --watch --json: one JSON document per line, no escapes; | head ends it quietly', async (t) => {
  const svc = await services(t);
  const env = { ...svc.redisEnv, CLUSTER: svc.cluster };
  const r = await shell(`node "$BIN" status --watch --json | head -n 2`, env);
  t.equal(r.code, 0, 'the pipeline exits 0 once head has its two lines');
  t.equal(r.stderr, '', 'no EPIPE stack: nothing on stderr');
  const lines = r.stdout.split('\n').filter(Boolean);
  t.equal(lines.length, 2);
  for (const line of lines)
    t.match(JSON.parse(line), { cluster: svc.cluster, members: [] }, 'each line a whole document');
  t.notOk(r.stdout.includes(ESC), 'no escape sequence');
});

t.test('a closed pipe ends any command quietly: help piped into head', async (t) => {
  for (const command of [
    'node "$BIN" setup --help | head -c 10',
    'node "$BIN" start --help | head -n 1',
    'node "$BIN" --help | true',
  ]) {
    const r = await shell(command, {});
    t.equal(r.code, 0, command);
    t.equal(r.stderr, '', `${command}: nothing on stderr`);
  }
});

t.test('escapes only on a terminal, and never with NO_COLOR', async (t) => {
  const svc = await services(t);
  const env = { ...svc.redisEnv, CLUSTER: svc.cluster, LOG_LEVEL: 'info' };
  const tty = await inTerminal(['status', '--watch'], env, 2500);
  t.ok(tty.includes(CLEAR_SCREEN), 'on a terminal --watch clears the screen between views');
  t.match(tty, /no members/);
  const plain = await inTerminal(['status', '--watch'], { ...env, NO_COLOR: '1' }, 2500);
  t.match(plain, /no members/);
  t.notOk(plain.includes(ESC), 'NO_COLOR: no escape at all, on a terminal too');
  // the logger: coloured text on a terminal, plain text with NO_COLOR, JSON lines into a pipe
  const mockArgs = ['mock', '--port', '0'];
  const coloured = await inTerminal(mockArgs, env, 2000);
  t.match(coloured, /Mockstagram mock listening/);
  t.match(coloured, COLOUR, 'coloured log on a terminal');
  const noColour = await inTerminal(mockArgs, { ...env, NO_COLOR: '1' }, 2000);
  t.match(noColour, /Mockstagram mock listening/);
  t.notOk(noColour.includes(ESC), 'NO_COLOR: the log without colour');
});

t.test('setup --check --json: the servers found, as one JSON document', async (t) => {
  const r = await runCli(['setup', '--check', '--json'], {}, 60_000);
  const report = JSON.parse(r.stdout);
  t.same(
    report.servers.map((s: { name: string }) => s.name),
    ['redis-server', 'ferretdb'],
  );
  for (const s of report.servers) {
    t.equal(typeof s.found, 'boolean');
    if (s.found) t.match(s, { version: String, path: /^\// });
    else t.match(s, { missing: String });
  }
  t.equal(r.code, report.servers.every((s: { found: boolean }) => s.found) ? 0 : 1, 'exit 0 only when both are there');
  const usage = await runCli(['setup', '--json']);
  t.equal(usage.code, 2, '--json without --check is a usage error');
  t.match(usage.stderr, /--json goes with --check/);
});

t.test('the benchmark, soak and chaos entry points answer --help with their flags and scenarios', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { join } = await import('node:path');
  const entry = (file: string, args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'dist', file), ...args], { cwd: ROOT, env: cleanEnv(), encoding: 'utf8' });
  const bench = entry('bench/run.js', ['--help']);
  t.equal(bench.status, 0, 'bench --help exits 0');
  t.match(bench.stdout, /--quick[\s\S]*--only[\s\S]*--node-env/, 'its flags');
  t.match(bench.stdout, /^ {2}10 {2}The mission/m, 'its scenarios, by number');
  const soak = entry('chaos/soak.js', ['--help']);
  t.equal(soak.status, 0, 'soak --help exits 0');
  t.match(soak.stdout, /--minutes N[\s\S]*--interval-ms N/);
  t.match(soak.stdout, /^ {2}sigkill$/m, 'the faults it picks from');
  t.match(soak.stdout, /^ {2}clockSkew\(-?\d+\)$/m);
  const chaos = entry('chaos/run.js', ['--help']);
  t.equal(chaos.status, 0, 'chaos --help exits 0');
  t.match(chaos.stdout, /^ {2}nodes +Nodes killed and restarted$/m, 'the suites');
  for (const [file, args, message] of [
    ['bench/run.js', ['--frob'], /^bench: Unknown option '--frob'/],
    ['chaos/soak.js', ['--frob'], /^soak: unknown argument --frob/],
    ['chaos/run.js', ['--only', 'nope'], /^chaos: no suite nope: expected some of /],
  ] as const) {
    const r = entry(file, [...args]);
    t.equal(r.status, 2, `${file} ${args.join(' ')}: exit 2`);
    t.match(r.stderr, message);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});
