// What `influencer-node setup` does, and what demo, the tests and the benchmark call before they
// start servers: find redis-server and FerretDB, install the missing ones, or say in one line per
// server why that cannot be done here (before any long step starts).
import { dirname } from 'node:path';
import { FERRET_VERSION, ferretCachePath, findFerret, findRedis } from './binaries.js';
import type { Binary, Lookup, ServerName } from './binaries.js';
import {
  aptSteps,
  COMMAND_APT,
  ferretBlocker,
  goVersion,
  installFerret,
  installRedis,
  redisBlocker,
  seconds,
} from './install.js';
import type { AptPolicy, Write } from './install.js';
import { SetupError } from './setup-error.js';

export interface Servers {
  redis?: Binary;
  ferret?: Binary;
  /** what this call installed */
  installed: ServerName[];
}

/** Which servers a caller needs (a test run given REDIS_URL needs no redis-server). */
export interface Wanted {
  redis: boolean;
  ferret: boolean;
}

/** One server as found: the binary, or how it would be installed, or what stops that. */
export interface Survey {
  name: ServerName;
  lookup: Lookup;
  /** how `setup` gets it: "install" or "build" `what` */
  install?: { verb: 'install' | 'build'; what: string };
  blocker?: string;
}

type Env = NodeJS.ProcessEnv;

const BOTH: Wanted = { redis: true, ferret: true };

/** Looks for each wanted server; for a missing one, how `setup` would install it or why it cannot. */
export async function survey(env: Env = process.env, wanted: Wanted = BOTH, apt = COMMAND_APT): Promise<Survey[]> {
  return Promise.all(
    [wanted.redis && surveyRedis(env, apt), wanted.ferret && surveyFerret(env)].filter((s) => s !== false),
  );
}

async function surveyRedis(env: Env, apt: AptPolicy): Promise<Survey> {
  const lookup = await findRedis(env);
  if (lookup.found) return { name: 'redis-server', lookup };
  const install = { verb: 'install', what: `the Debian package redis-server with apt-get (${aptSteps()})` } as const;
  return { name: 'redis-server', lookup, blocker: redisBlocker(env, apt), install };
}

async function surveyFerret(env: Env): Promise<Survey> {
  const lookup = await findFerret(env);
  if (lookup.found) return { name: 'ferretdb', lookup };
  const go = await goVersion(env);
  const what = `FerretDB ${FERRET_VERSION} with ${go} into ${dirname(ferretCachePath(env))} (a few minutes, once)`;
  return { name: 'ferretdb', lookup, blocker: await ferretBlocker(env), install: { verb: 'build', what } };
}

/** The line `setup` prints for a server: its version and path, or what is missing and what happens next. */
export function describe(s: Survey, missing: 'check' | 'install'): string {
  const name = s.name.padEnd(13);
  if (s.lookup.found) return `${name} ${s.lookup.found.version.padEnd(8)} ${s.lookup.found.path}`;
  const passed = s.lookup.unusable.length ? ` (passed over: ${s.lookup.unusable.join(', ')})` : '';
  if (s.blocker) return `${name} ${s.blocker}${passed}`;
  const { verb, what } = s.install!;
  return `${name} missing${passed}: ${missing === 'check' ? `\`influencer-node setup\` ${verb}s` : `${verb}ing`} ${what}`;
}

/**
 * Finds the wanted servers and installs the missing ones, printing one line per server (what it
 * will install, before it does) and one per install step. Throws a SetupError, before installing
 * anything, when one cannot be installed (apt-get only as `apt` allows).
 */
export async function ensureServers(
  write: Write,
  env: Env = process.env,
  wanted: Wanted = BOTH,
  apt: AptPolicy = COMMAND_APT,
): Promise<Servers> {
  const found = await survey(env, wanted, apt);
  const blocked = found.filter((s) => s.blocker);
  if (blocked.length > 0) throw new SetupError(blocked.map((s) => s.blocker!));
  const servers: Servers = { installed: [] };
  for (const s of found) {
    write(`${describe(s, 'install')}\n`);
    const binary = s.lookup.found ?? (await install(s.name, write, env, apt));
    if (!s.lookup.found) servers.installed.push(s.name);
    servers[s.name === 'redis-server' ? 'redis' : 'ferret'] = binary;
  }
  return servers;
}

/** Installs one server, then prints its line again with the time the install took. */
async function install(name: ServerName, write: Write, env: Env, apt: AptPolicy): Promise<Binary> {
  const started = Date.now();
  const binary =
    name === 'redis-server'
      ? await installRedis(write, env, apt).then(async () => (await findRedis(env)).found)
      : await installFerret(write, env);
  if (!binary) throw new SetupError([`${name} was installed but is still not on PATH, or its --version fails`]);
  const line = describe({ name, lookup: { found: binary, unusable: [] } }, 'install');
  write(`${line}  (installed in ${seconds(Date.now() - started)})\n`);
  return binary;
}
