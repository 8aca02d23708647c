// lib/README.md is the map of lib/: it names every file (one line each), no folder holds more than
// 10 files, and every module has a test that imports it or a line naming the scenario that covers it.
// test/unit/ mirrors lib/: each of its files is named after a module or folder of lib/ at its path.
import t from 'tap';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAX_FILES_PER_FOLDER = 10;

/** Every file below `dir`, as a path from the repository's root. */
function filesBelow(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

/** The README's entries: each file it names (the folder of the heading above + the bullet's name) and its line. */
function readmeEntries(): Map<string, string> {
  const entries = new Map<string, string>();
  let folder = '';
  let last = '';
  for (const line of readFileSync(join(ROOT, 'lib/README.md'), 'utf8').split('\n')) {
    const heading = /^#{2,3} `(lib\/[^`]*)`/.exec(line);
    const bullet = /^- `([^`]+)`:/.exec(line);
    if (heading) folder = heading[1]!;
    else if (bullet) entries.set((last = folder + bullet[1]), line);
    else if (line.startsWith('  ') && last) entries.set(last, `${entries.get(last)} ${line.trim()}`);
    else last = '';
  }
  return entries;
}

const files = filesBelow('lib');
const entries = readmeEntries();

t.test('lib/README.md names every file of lib/, and only files that exist', async (t) => {
  t.same(
    files.filter((f) => !entries.has(f)),
    [],
    'files not named',
  );
  t.same(
    [...entries.keys()].filter((f) => !files.includes(f)),
    [],
    'named but missing',
  );
});

t.test(`no folder of lib/ holds more than ${MAX_FILES_PER_FOLDER} files`, async (t) => {
  const perFolder = new Map<string, number>();
  for (const f of files) perFolder.set(dirname(f), (perFolder.get(dirname(f)) ?? 0) + 1);
  t.same(
    [...perFolder].filter(([, n]) => n > MAX_FILES_PER_FOLDER),
    [],
  );
});

t.test('every module has a test that imports it or a scenario named in lib/README.md', async (t) => {
  const imported = new Set<string>();
  for (const f of filesBelow('test').filter((f) => f.endsWith('.ts'))) {
    for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/['"`](\.{1,2}\/[^'"`]+)\.js['"`]/g)) {
      imported.add(relative(ROOT, resolve(ROOT, dirname(f), m[1]!)) + '.ts');
    }
  }
  const uncovered = files
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !imported.has(f))
    .filter((f) => !/covered by .*`test\/[^`]+\.test\.ts`/i.test(entries.get(f) ?? ''));
  t.same(uncovered, [], 'modules no test imports and no README line covers');
  const cited = [...entries.values()].flatMap((line) => line.match(/`test\/[^`]+\.test\.ts`/g) ?? []);
  t.same(
    cited.map((c) => c.slice(1, -1)).filter((c) => !existsSync(join(ROOT, c))),
    [],
    'scenarios named that do not exist',
  );
});

t.test('every file of test/unit/ is named after a module or a folder of lib/ at its path', async (t) => {
  const unit = filesBelow('test/unit').filter((f) => f.endsWith('.test.ts'));
  t.ok(unit.length > 0, 'test/unit/ holds tests');
  const mirrorsNothing = unit.filter((f) => {
    const mirrored = join('lib', relative('test/unit', f)).replace(/\.test\.ts$/, '');
    return !existsSync(join(ROOT, `${mirrored}.ts`)) && !existsSync(join(ROOT, mirrored));
  });
  t.same(mirrorsNothing, [], 'unit tests whose path names nothing in lib/');
});
