// Where the servers come from: Debian's redis-server on PATH, and our build of FerretDB 1.24.2 with
// its SQLite backend (scripts/build-ferretdb.sh) from the per-user cache, from PATH, or from
// $GOPATH/bin. A binary counts only if `--version` runs (a FerretDB built without its version file
// panics there) and, for FerretDB, names our build: a stock one reads every lookup by scanning.
import { execFile } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';

export const FERRET_VERSION = 'v1.24.2';
/** What our build of it says in `--version` (scripts/build-ferretdb.sh): lookups by `_id` use its index. */
export const FERRET_PACKAGE = 'influencer-node-id-index';

export type ServerName = 'redis-server' | 'ferretdb';

/** A server binary whose `--version` ran. */
export interface Binary {
  name: ServerName;
  path: string;
  version: string;
}

/** What a look for one server found: the binary to use, and the candidates passed over and why. */
export interface Lookup {
  found?: Binary;
  unusable: string[];
}

type Env = NodeJS.ProcessEnv;

/** $XDG_CACHE_HOME/influencer-node, else ~/.cache/influencer-node: built binaries, kept between runs. */
export function cacheDir(env: Env = process.env): string {
  return join(env.XDG_CACHE_HOME || join(home(env), '.cache'), 'influencer-node');
}

/** Where `setup` builds FerretDB: one directory per version, so another version never shadows it. */
export function ferretCachePath(env: Env = process.env): string {
  return join(cacheDir(env), `ferretdb-${FERRET_VERSION}-${FERRET_PACKAGE}`, 'ferretdb');
}

export function home(env: Env = process.env): string {
  return env.HOME || homedir();
}

/**
 * PATH without the directories a tool must not come from: relative ones (they depend on the working
 * directory) and node_modules/.bin (npm puts it first while it runs a script: any package could
 * shadow apt-get or go there).
 */
export function toolPath(env: Env = process.env): string[] {
  return (env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => isAbsolute(dir) && !/node_modules[\\/]\.bin[\\/]?$/.test(dir));
}

/** `env` with PATH reduced to toolPath: what the installers and servers run with. */
export function toolEnv(env: Env = process.env): Env {
  return { ...env, PATH: toolPath(env).join(delimiter) };
}

/** The absolute path of the first executable file called `name` in toolPath. */
export function onPath(name: string, env: Env = process.env): string | undefined {
  for (const dir of toolPath(env)) {
    const path = join(dir, name);
    if (isExecutable(path)) return path;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** What `path --version` prints, or undefined when it fails or takes over 10 s. */
function versionOutput(path: string, env: Env): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(path, ['--version'], { env: toolEnv(env), timeout: 10_000 }, (err, stdout) =>
      resolve(err ? undefined : stdout),
    );
  });
}

export async function findRedis(env: Env = process.env): Promise<Lookup> {
  const path = onPath('redis-server', env);
  if (!path) return { unusable: [] };
  const version = /\bv=(\d[\w.]*)/.exec((await versionOutput(path, env)) ?? '')?.[1];
  if (!version) return { unusable: [`${path} (its --version fails)`] };
  return { found: { name: 'redis-server', path, version }, unusable: [] };
}

/** The cache first (what `setup` builds), then PATH, then $GOPATH/bin (default ~/go/bin). */
export async function findFerret(env: Env = process.env): Promise<Lookup> {
  const gopath = (env.GOPATH || join(home(env), 'go')).split(delimiter)[0]!;
  const candidates = [ferretCachePath(env), onPath('ferretdb', env), join(gopath, 'bin', 'ferretdb')];
  const unusable: string[] = [];
  for (const path of new Set(candidates)) {
    if (!path || !isExecutable(path)) continue;
    const out = await versionOutput(path, env);
    const version = /^version:\s*(v\S+)/m.exec(out ?? '')?.[1];
    const ours = new RegExp(`^package:\\s*${FERRET_PACKAGE}\\s*$`, 'm').test(out ?? '');
    // our build of 1.24.2: the SQLite backend, and lookups by _id from its index (a stock build scans)
    if (version === FERRET_VERSION && ours) return { found: { name: 'ferretdb', path, version }, unusable };
    const why = !version
      ? 'its --version fails'
      : version !== FERRET_VERSION
        ? `${version}, not ${FERRET_VERSION}`
        : 'built without the _id index fix';
    unusable.push(`${path} (${why})`);
  }
  return { unusable };
}
