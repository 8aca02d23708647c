import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's own directory (holding package.json, bin/, scripts/): the first directory above this
 * file (lib/shared/ or dist/lib/shared/) whose package.json names influencer-node.
 */
export const PACKAGE_ROOT: string = findRoot();

/** The package version, read once from package.json. */
export const VERSION: string = readVersion();

function findRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (; dirname(dir) !== dir; dir = dirname(dir)) {
    try {
      if (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === 'influencer-node') return dir;
    } catch {
      /* try the directory above */
    }
  }
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

function readVersion(): string {
  try {
    return String(JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version);
  } catch {
    return '0.0.0';
  }
}
