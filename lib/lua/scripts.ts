// Every Lua script of this folder, read once and called through a typed function: each file's
// header lists its keys, arguments and result. A script is registered on a Redis client at its
// first call (EVALSHA, with EVAL when the server does not have it yet).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RedisClient } from '../shared/redis.js';
import { PACKAGE_ROOT } from '../shared/version.js';

type Arg = string | number | Buffer;
type Reply = number | string | null | Reply[];

/** The text of a script of this folder (the package's lib/lua, whether run from source or dist). */
export function scriptText(file: string): string {
  return readFileSync(join(PACKAGE_ROOT, 'lib', 'lua', file), 'utf8');
}

/** A caller of one script: `(redis, keys, args)` resolves to its reply. */
function script<R extends Reply>(
  file: string,
): (redis: RedisClient, keys: readonly string[], args: readonly Arg[]) => Promise<R> {
  const lua = scriptText(file);
  const name = `lua_${file.replace(/\W/g, '_')}`;
  return (redis, keys, args) => {
    if (!(name in redis)) redis.defineCommand(name, { lua });
    const call = (redis as unknown as Record<string, (...a: Arg[]) => Promise<R>>)[name]!;
    return call.call(redis, keys.length, ...keys, ...args);
  };
}

/** apply.lua: one slice's part of a log document into its running totals and open buffers. */
export const applySlice = script<number | Array<string | number>>('apply.lua');
/** merge.lua: a rebuild's batch of one slice's totals, fenced by its token. */
export const mergeSlice = script<number>('merge.lua');
const raise = script<string>('raise.lua');
/** raise.lua: a numeric mark (a key, or a field of a hash) moved forward to `value`, never back; resolves to the mark after. */
export async function raiseMark(redis: RedisClient, key: string, value: number, field?: string): Promise<number> {
  return Number(await raise(redis, [key], field === undefined ? [value] : [value, field]));
}
/** heartbeat.lua: this process's member card refreshed (or claimed again). */
export const heartbeat = script<number>('heartbeat.lua');
/** release.lua: this process's member card deleted. */
export const release = script<number>('release.lua');
