// The dashboard's files, served by the read API as they are: no build step, no CDN.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../shared/version.js';

export interface Asset {
  type: string;
  body: Buffer;
}

/** The dashboard's files (the package's lib/read/dashboard), and uPlot's from node_modules (no CDN); read once. */
export function loadAssets(): Map<string, Asset> {
  const dir = join(PACKAGE_ROOT, 'lib', 'read', 'dashboard');
  const uplot = createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js');
  const file = (path: string, type: string): Asset => ({ type, body: readFileSync(path) });
  return new Map([
    ['/', file(join(dir, 'index.html'), 'text/html; charset=utf-8')],
    ['/app.js', file(join(dir, 'app.js'), 'text/javascript; charset=utf-8')],
    ['/style.css', file(join(dir, 'style.css'), 'text/css; charset=utf-8')],
    ['/vendor/uPlot.iife.min.js', file(uplot, 'text/javascript; charset=utf-8')],
    ['/vendor/uPlot.min.css', file(uplot.replace(/uPlot\.iife\.min\.js$/, 'uPlot.min.css'), 'text/css; charset=utf-8')],
  ]);
}
