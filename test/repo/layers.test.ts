// The folder order of .dependency-cruiser.cjs holds on lib/, and the check catches a back-import
// planted in a copy of lib/ (a core folder importing the settings table of ops/).
import t from 'tap';
import { appendFileSync, cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseResult, type IViolation } from 'dependency-cruiser';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const { forbidden, options } = createRequire(import.meta.url)(join(ROOT, '.dependency-cruiser.cjs'));

async function violations(baseDir: string): Promise<IViolation[]> {
  const cwd = process.cwd();
  process.chdir(baseDir);
  try {
    const out = await cruise(['lib'], {
      validate: true,
      ruleSet: { forbidden },
      doNotFollow: options.doNotFollow,
      tsPreCompilationDeps: true,
      baseDir,
    });
    return (out.output as ICruiseResult).summary.violations;
  } finally {
    process.chdir(cwd);
  }
}

t.test('lib/ keeps the folder order', async (t) => {
  t.same(await violations(ROOT), []);
});

t.test('a planted back-import fails the check', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'layers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(join(ROOT, 'lib'), join(dir, 'lib'), { recursive: true });
  cpSync(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
  t.same(await violations(dir), [], 'the copy passes as it is');
  const plant = (file: string, line: string) => appendFileSync(join(dir, 'lib', file), `\n${line}\n`);
  plant('shared/util.ts', "export { SETTINGS } from '../ops/config.js';"); // up: the core on ops/
  plant('ring/ring.ts', "export { readStatus } from '../cluster/status.js';"); // up one layer
  plant('polling/slots.ts', "export { openApi } from '../read/api.js';"); // sideways in a layer
  plant('storage/format/layout.ts', "export { Ring } from '../../ring/ring.js';"); // down: allowed
  // (the planted imports close cycles too: that is the no-cycles rule's business, left out here)
  const found = (await violations(dir)).filter((v) => v.rule.name.startsWith('layer-'));
  t.same(found.map((v) => [v.rule.name, v.from, v.to]).sort(), [
    ['layer-polling', 'lib/polling/slots.ts', 'lib/read/api.ts'],
    ['layer-ring', 'lib/ring/ring.ts', 'lib/cluster/status.ts'],
    ['layer-shared', 'lib/shared/util.ts', 'lib/ops/config.ts'],
  ]);
});
