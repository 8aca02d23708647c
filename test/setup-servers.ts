// Run by tap before any test file (.taprc `before`): finds redis-server and FerretDB, or installs
// them as `influencer-node setup` does, once, so that `npm test` works on a fresh machine and the
// test files, run in parallel, only start what is already there. apt-get runs only when CI is set or
// APT_INSTALL=yes (testsApt). Exits 1 when that cannot be done.
import { ensureServers } from '../lib/ops/embedded/setup.js';
import { SetupError } from '../lib/ops/embedded/setup-error.js';
import { testsApt } from './kit/servers.js';
import { ConfigError } from '../lib/ops/config.js';

const wanted = { redis: !process.env.REDIS_URL, ferret: !process.env.MONGO_URL };
try {
  if (wanted.redis || wanted.ferret) process.stdout.write('servers the test files start:\n');
  await ensureServers(
    (text) => {
      process.stdout.write(text);
    },
    process.env,
    wanted,
    testsApt(),
  );
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`npm test: ${err.message}\n`);
    process.exit(2);
  }
  if (!(err instanceof SetupError)) throw err;
  for (const line of err.lines) process.stderr.write(`npm test: ${line}\n`);
  for (const line of err.tail) process.stderr.write(`  | ${line}\n`);
  process.exit(1);
}
