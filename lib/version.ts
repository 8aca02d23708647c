import { readFileSync } from 'node:fs';

/** The package version, read once from package.json next to lib/ or dist/lib/. */
export const VERSION: string = readVersion();

function readVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));
      if (pkg.name === 'influencer-node') return String(pkg.version);
    } catch { /* try the next candidate */ }
  }
  return '0.0.0';
}
