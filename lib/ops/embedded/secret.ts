// The password of a server we start, one per data directory: made the first time, kept in the
// directory (mode 0600, the directory 0700), so a restart on the same data uses the same one.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SetupError } from './setup-error.js';

export const SECRET_FILE = 'password';

/** Creates `dir` (and its missing parents) readable by this user only, and tightens it if it was not. */
export function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/**
 * The server password kept in `dir`, made (48 hex digits, URL-safe) if there is none yet. `fresh`
 * says it was just made: data from before it was protected by another password, or by none.
 */
export function serverSecret(dir: string): { secret: string; fresh: boolean } {
  privateDir(dir);
  const file = join(dir, SECRET_FILE);
  if (existsSync(file)) {
    chmodSync(file, 0o600);
    const secret = readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{32,}$/.test(secret)) return { secret, fresh: false };
    throw new SetupError([`${file} does not hold a password this program made: remove it to get a new one`]);
  }
  const secret = randomBytes(24).toString('hex');
  try {
    writeFileSync(file, `${secret}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // another process made it first: use that one
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return serverSecret(dir);
    throw err;
  }
  return { secret, fresh: true };
}
