// Every repository path that a comment or a Markdown file of lib/, bench/, chaos/ and test/ cites
// exists: a file moved or renamed leaves no comment pointing at where it was. Run by `npm run lint`;
// prints each stale citation as file:line: path, and exits 1 when there is one.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const FOLDERS = ['lib', 'bench', 'chaos', 'test'];

/** A path from the repository's root: a top folder of the repository, then names; not part of a longer path (dist/lib/…). */
const ROOTED = /(?<![\w./@$-])((?:lib|bench|chaos|test|scripts|deploy|bin|\.ci)\/[\w.@-]*(?:\/[\w.@-]+)*\/?)/g;
/** A path from a folder of the citing file's (`format/codec.ts` in lib/storage/): folders, then a file of a kind we keep. */
const RELATIVE = /(?<![\w./@$-])((?:\w[\w.-]*\/)+[\w.-]+\.(?:ts|js|mjs|cjs|lua|md|json|sh|yml|css|html))(?![\w/])/g;
/** A Markdown link to a relative target. */
const LINK = /\]\((?!https?:|#|mailto:)([^)\s#]+)/g;

/** The comments of a script, each with where it starts: those before and after every token of its syntax tree. */
function scriptComments(file, text) {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found = new Map();
  const collect = (ranges) => ranges?.forEach((r) => found.set(r.pos, text.slice(r.pos, r.end)));
  const visit = (node) => {
    collect(ts.getLeadingCommentRanges(text, node.pos));
    collect(ts.getTrailingCommentRanges(text, node.end));
    node.getChildren(source).forEach(visit);
  };
  visit(source);
  return [...found].map(([at, comment]) => ({ at, text: comment }));
}

/** The comments of a Lua script: `--` to the end of the line, `--[[ … ]]` blocks. */
function luaComments(text) {
  return [...text.matchAll(/--\[\[[\s\S]*?\]\]|--[^\n]*/g)].map((m) => ({ at: m.index, text: m[0] }));
}

/** What of a file may cite paths, by its kind: comments of code, the whole of prose. */
function citingParts(file, text) {
  if (/\.(ts|js|mjs|cjs)$/.test(file)) return scriptComments(file, text);
  if (file.endsWith('.lua')) return luaComments(text);
  if (file.endsWith('.css')) return [...text.matchAll(/\/\*[\s\S]*?\*\//g)].map((m) => ({ at: m.index, text: m[0] }));
  if (/\.(md|sh|yml)$/.test(file)) return [{ at: 0, text }];
  return [];
}

/** Whether `path` names something from the citing file's folder or one above it (up to the root). */
function fromAFolderOf(file, path) {
  for (let dir = dirname(file); ; dir = dirname(dir)) {
    if (existsSync(join(ROOT, dir, path))) return true;
    if (dir === '.' || dir === '') return false;
  }
}

const lineOf = (text, at) => text.slice(0, at).split('\n').length;

/** Each stale citation of `file`: where it stands and the path it names. */
export function staleCitations(file, text) {
  const stale = [];
  for (const part of citingParts(file, text)) {
    for (const m of part.text.matchAll(ROOTED)) {
      const path = m[1].replace(/[.]+$/, '');
      if (!existsSync(join(ROOT, path))) stale.push({ line: lineOf(text, part.at + m.index), path });
    }
    for (const m of part.text.matchAll(RELATIVE)) {
      if (/^(?:lib|bench|chaos|test|scripts|deploy|bin|\.ci)\//.test(m[1])) continue; // checked above
      if (!fromAFolderOf(file, m[1])) stale.push({ line: lineOf(text, part.at + m.index), path: m[1] });
    }
    if (!file.endsWith('.md')) continue;
    for (const m of part.text.matchAll(LINK)) {
      const path = relative(ROOT, join(ROOT, dirname(file), m[1]));
      if (!existsSync(join(ROOT, path))) stale.push({ line: lineOf(text, part.at + m.index), path });
    }
  }
  return stale;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', ...FOLDERS], { cwd: ROOT })
    .toString()
    .split('\n')
    .filter((f) => f && !f.startsWith('bench/results/') && existsSync(join(ROOT, f)));
  let count = 0;
  for (const file of files) {
    for (const { line, path } of staleCitations(file, readFileSync(join(ROOT, file), 'utf8'))) {
      console.error(`${file}:${line}: cites ${path}, which does not exist`);
      count++;
    }
  }
  if (count > 0) {
    console.error(`${count} stale path citation${count === 1 ? '' : 's'}`);
    process.exit(1);
  }
}
