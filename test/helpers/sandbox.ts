// A machine without redis-server and FerretDB, as far as the CLI can tell: a PATH holding only the
// tools the setup code and scripts/build-ferretdb.sh call, plus stand-ins for the installers
// (apt-get, go) that record their calls and "install" by linking the real servers of this machine.
// Nothing else is faked: what they install is the real redis-server and FerretDB.
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findFerret, findRedis } from '../../lib/ops/embedded/binaries.js';
import type { Owner } from '../kit/servers.js';

const TOOLS = [
  'bash',
  'sh',
  'cat',
  'cp',
  'chmod',
  'dirname',
  'grep',
  'head',
  'ln',
  'mkdir',
  'mktemp',
  'mv',
  'rm',
  'sed',
  'sleep',
  'env',
];

export interface SandboxOptions {
  /** apt-get that "installs" redis-server by linking the real one into the sandbox's PATH */
  apt?: boolean;
  /** go whose build links the real FerretDB to the -o path; 'fails' prints compile errors and exits 1 */
  go?: 'builds' | 'fails';
  /** seconds the stand-in `go build` takes (to overlap two builds) */
  buildSeconds?: number;
  /** servers already "installed": linked into the sandbox's PATH */
  present?: Array<'redis-server' | 'ferretdb'>;
}

export interface Sandbox {
  root: string;
  /** environment for runCli: the sandbox PATH, and its own HOME, cache and data directories */
  env: Record<string, string>;
  cache: string;
  /** the calls the stand-ins received, one line each: "apt-get install -y redis-server", "go build …" */
  calls(): string[];
}

export async function sandbox(t: Owner, o: SandboxOptions = {}): Promise<Sandbox> {
  const root = mkdtempSync(join(tmpdir(), 'inode-sandbox-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const [bin, tools, home] = ['bin', 'tools', 'home'].map((d) => join(root, d));
  for (const d of [bin, tools, home]) mkdirSync(d, { recursive: true });
  // readable by nobody, for the tests that run the CLI as another user
  for (const d of [root, bin, tools, home]) chmodSync(d, 0o777);
  for (const tool of TOOLS) {
    const real = ['/usr/bin', '/bin'].map((d) => join(d, tool)).find((p) => existsSync(p));
    if (real) symlinkSync(real, join(tools, tool));
  }
  const callLog = join(root, 'calls');
  const redis = (await findRedis()).found!.path;
  const ferret = (await findFerret()).found!.path;
  for (const name of o.present ?? []) symlinkSync(name === 'redis-server' ? redis : ferret, join(bin, name));
  const script = (name: string, body: string): void => {
    writeFileSync(join(bin, name), `#!/bin/bash\necho "${name} $*" >> ${callLog}\n${body}\n`, { mode: 0o755 });
  };
  if (o.apt) {
    script(
      'apt-get',
      `case "$1" in
  update) echo "Reading package lists... Done" ;;
  install) ln -sf ${redis} ${bin}/redis-server; echo "Setting up redis-server" ;;
esac`,
    );
  }
  if (o.go) {
    const src = join(root, 'go-mod', 'ferretdb');
    // the line of the module that the build script fixes (lookups by _id through the _id index)
    const metadata = join(src, 'internal', 'backends', 'sqlite', 'metadata');
    mkdirSync(metadata, { recursive: true });
    writeFileSync(join(metadata, 'metadata.go'), '\tIDColumn = DefaultColumn + "->\'$._id\'"\n');
    const build =
      o.go === 'fails'
        ? 'echo "# github.com/FerretDB/FerretDB/internal/handler"; echo "internal/handler/msg_find.go:42:7: undefined: sqlite.Open" >&2; exit 1'
        : `while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done; ln -sf ${ferret} "$out"`;
    script(
      'go',
      `case "$1" in
  env) echo go1.26.8 ;;
  mod) mkdir -p ${src}/build/version
    printf '{\\n\\t"Dir": "%s",\\n}\\n' ${src} ;;
  build) sleep ${o.buildSeconds ?? 0}; ${build} ;;
esac`,
    );
  }
  const cache = join(root, 'cache');
  return {
    root,
    cache,
    env: { PATH: `${bin}:${tools}`, HOME: home, XDG_CACHE_HOME: cache, XDG_DATA_HOME: join(root, 'data') },
    calls: () => (existsSync(callLog) ? readFileSync(callLog, 'utf8').trim().split('\n').filter(Boolean) : []),
  };
}
