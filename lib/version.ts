import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package's own directory (holding package.json, bin/, scripts/), from lib/ or dist/lib/. */
export const PACKAGE_ROOT: string = findRoot();

/** The package version, read once from package.json. */
export const VERSION: string = readVersion();

function findRoot(): string {
  for (const rel of ['..', '../..']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    try {
      if (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === 'influencer-node') return dir.replace(/\/$/, '');
    } catch { /* try the next candidate */ }
  }
  return dirname(dirname(fileURLToPath(import.meta.url)));
}

function readVersion(): string {
  try {
    return String(JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version);
  } catch {
    return '0.0.0';
  }
}
