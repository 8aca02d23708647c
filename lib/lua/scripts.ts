// Every Lua script of this folder, read once and called through a typed function: each file's
// header lists its keys, arguments and result. A script is registered on a Redis client at its
// first call (EVALSHA, with EVAL when the server does not have it yet).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { PACKAGE_ROOT } from '../ops/version.js';

type Arg = string | number;
type Reply = number | string | null | Reply[];

/** The text of a script of this folder (the package's lib/lua, whether run from source or dist). */
export function scriptText(file: string): string {
  return readFileSync(join(PACKAGE_ROOT, 'lib', 'lua', file), 'utf8');
}

/** A caller of one script: `(redis, keys, args)` resolves to its reply. */
function script<R extends Reply>(
  file: string,
): (redis: Redis, keys: readonly string[], args: readonly Arg[]) => Promise<R> {
  const lua = scriptText(file);
  const name = `lua_${file.replace(/\W/g, '_')}`;
  return (redis, keys, args) => {
    if (!(name in redis)) redis.defineCommand(name, { lua });
    const call = (redis as unknown as Record<string, (...a: Arg[]) => Promise<R>>)[name]!;
    return call.call(redis, keys.length, ...keys, ...args);
  };
}

/** apply-log.lua: one log document into the running totals and open buffers. */
export const applyLog = script<number | Array<string | number>>('apply-log.lua');
/** merge-totals.lua: a rebuild's batch of totals, fenced by its token. */
export const mergeTotals = script<number>('merge-totals.lua');
const raise = script<string>('raise.lua');
/** raise.lua: a numeric mark moved forward to `value`, never back; resolves to the mark after. */
export async function raiseMark(redis: Redis, key: string, value: number): Promise<number> {
  return Number(await raise(redis, [key], [value]));
}
/** heartbeat.lua: this process's member card refreshed (or claimed again). */
export const heartbeat = script<number>('heartbeat.lua');
/** release.lua: this process's member card deleted. */
export const release = script<number>('release.lua');
