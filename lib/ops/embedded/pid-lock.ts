// A file holding the pid of the process that owns something (a FerretDB build, a demo's data
// directory). A dead owner's file is taken over, so a crash never leaves the thing locked.
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';

export type Claim = { ok: true } | { ok: false; holder: number };

/** Creates `file` with this process's pid unless a live process holds it (its pid, 0 while it is writing it). */
export function claim(file: string): Claim {
  for (;;) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      return { ok: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readText(file)) || 0;
    if (holder === process.pid) return { ok: true };
    // an empty file: its holder is between creating and writing it, unless that was long ago
    if (holder > 0 ? alive(holder) : ageMs(file) < 10_000) return { ok: false, holder };
    rmSync(file, { force: true });
  }
}

export function release(file: string): void {
  rmSync(file, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return '';
  }
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return Infinity;
  }
}
