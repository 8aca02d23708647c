// The lint step that holds comments and docs to the paths they cite (.ci/cited-paths.mjs): a path
// from the root or from a folder of the citing file's counts when it exists, and only in comments.
import t from 'tap';
// @ts-expect-error: a plain ES module of the lint, without types
import { staleCitations } from '../../.ci/cited-paths.mjs';

const stale = (file: string, text: string) =>
  (staleCitations(file, text) as { line: number; path: string }[]).map((s) => `${s.line}:${s.path}`);

t.test('a comment citing a path that does not exist is reported with its line', async (t) => {
  const text = ['// the keys (lib/shared/keys.ts)', 'const x = 1;', '/** see lib/keys.ts */', 'export { x };'].join(
    '\n',
  );
  t.same(stale('lib/shared/a.ts', text), ['3:lib/keys.ts']);
});

t.test('a path from a folder of the citing file counts; one from nowhere does not', async (t) => {
  const text = '// format/codec.ts packs them; so does codec/format.ts\nexport {};\n';
  t.same(stale('lib/storage/write/a.ts', text), ['1:codec/format.ts']);
});

t.test('code, strings and template literals are not comments', async (t) => {
  const text = "const a = 'lib/gone.ts';\nconst b = `${a}/lib/gone.ts`; // lib/gone-too.ts\nexport { b };\n";
  t.same(stale('test/a.ts', text), ['2:lib/gone-too.ts']);
});

t.test('Lua comments and Markdown, its relative links too', async (t) => {
  t.same(stale('lib/lua/a.lua', '--[[\n  KEYS as lib/keys.ts makes them\n]]\nlocal k = "lib/x.ts"\n'), [
    '2:lib/keys.ts',
  ]);
  t.same(stale('lib/storage/NOTES.md', 'See [the map](../README.md) and [gone](./GONE.md).\n'), [
    '1:lib/storage/GONE.md',
  ]);
});
