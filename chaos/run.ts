// `npm run chaos [-- --only nodes,redis]`: the fault suite, one tap file per group of faults
// (chaos/*.test.ts), then the summary of every figure they saved in .chaos/. Exit status: tap's.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SUITE = join(ROOT, 'chaos');

/** Each suite file by its name, with the first clause of its header comment. */
function suites(): Array<{ name: string; about: string }> {
  return readdirSync(SUITE)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => {
      const lines = readFileSync(join(SUITE, f), 'utf8').split('\n');
      const end = lines.findIndex((line) => !line.startsWith('//'));
      const header = lines
        .slice(0, end)
        .map((line) => line.slice(2).trim())
        .join(' ');
      return { name: f.replace(/\.test\.ts$/, ''), about: header.split(/[:.] |\.$/)[0] };
    });
}

function usage(): string {
  return `usage: npm run chaos [-- --only NAME,NAME,...]

Starts a real cluster per suite file (its own redis-server, FerretDB, the mock and 2 or 3 nodes),
injects its faults one after the other, checks every invariant after each, and prints the figures.
About 7 minutes for all of them.

Flags:
  --only NAME,...   only these suites
  -h, --help        this text

Suites (chaos/NAME.test.ts):
${suites()
  .map((s) => `  ${s.name.padEnd(12)} ${s.about}`)
  .join('\n')}
`;
}

function main(): number {
  let values: { only?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ options: { only: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    console.error(`chaos: ${(err as Error).message} (npm run chaos -- --help lists the flags)`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage());
    return 0;
  }
  const known = suites().map((s) => s.name);
  const only = values.only?.split(',').map((s) => s.trim()) ?? known;
  const unknown = only.filter((s) => !known.includes(s));
  if (unknown.length > 0) {
    console.error(`chaos: no suite ${unknown.join(', ')}: expected some of ${known.join(', ')}`);
    return 2;
  }
  rmSync(join(ROOT, '.chaos'), { recursive: true, force: true });
  const files = only.map((s) => join('chaos', `${s}.test.ts`));
  const tap = spawnSync('npx', ['tap', '--timeout', '600', ...files], { cwd: ROOT, stdio: 'inherit' });
  spawnSync(process.execPath, [join(ROOT, 'dist', 'chaos', 'summary.js')], { cwd: ROOT, stdio: 'inherit' });
  return tap.status ?? 1;
}

process.exit(main());
