import type { Config } from '../../ops/config.js';
import { describe, ensureServers, survey, type Survey } from '../../ops/embedded/setup.js';
import { aptPolicy } from '../../ops/embedded/install.js';
import { UsageError } from '../flags.js';

/**
 * `influencer-node setup [--check [--json]]`: finds redis-server and FerretDB, and installs the
 * missing ones (apt-get as root, a Go build into the cache); `--check` only reports. Exit 0 when both
 * are there.
 */
export async function setupCommand(config: Config, opts: Record<string, unknown>): Promise<number> {
  const out = (text: string): void => {
    process.stdout.write(text);
  };
  if (opts.json && !opts.check) throw new UsageError('--json goes with --check: an install prints its steps as text');
  const dataLine = `${'data'.padEnd(13)} ${config.dataDir}  (where the servers demo starts keep their data)\n`;
  const apt = aptPolicy(config.aptInstall, 'command');
  if (opts.check) {
    const found = await survey(process.env, undefined, apt);
    if (opts.json) out(`${JSON.stringify({ servers: found.map(checkRow), dataDir: config.dataDir })}\n`);
    else {
      for (const s of found) out(`${describe(s, 'check')}\n`);
      out(dataLine);
    }
    return found.every((s) => s.lookup.found) ? 0 : 1;
  }
  const { installed } = await ensureServers(out, process.env, undefined, apt);
  out(dataLine);
  if (installed.length === 0) out('nothing to install\n');
  return 0;
}

/** One server of `setup --check --json`. */
function checkRow(s: Survey): Record<string, unknown> {
  const found = s.lookup.found;
  return {
    name: s.name,
    found: Boolean(found),
    version: found?.version ?? null,
    path: found?.path ?? null,
    passedOver: s.lookup.unusable,
    ...(found ? {} : { missing: describe(s, 'check').slice(s.name.length).trim() }),
  };
}
