import { Command, CommanderError } from 'commander';
import dotenv from 'dotenv';
import { ConfigError, loadConfig, type Config } from '../ops/config.js';
import { FERRET_VERSION } from '../ops/embedded/binaries.js';
import { SetupError } from '../ops/embedded/setup-error.js';
import { endQuietlyOnClosedPipe } from '../shared/terminal.js';
import { VERSION } from '../shared/version.js';
import { UsageError } from './flags.js';
import { EXIT } from './exit.js';
import { LayoutMismatch } from '../storage/format/layout.js';
import { addSettingOptions, givenOptions } from './setting-options.js';

export { EXIT };

type Action = (config: Config, opts: Record<string, unknown>, args: string[]) => Promise<number | void>;

/** Runs the CLI on `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  dotenv.config({ quiet: true });
  endQuietlyOnClosedPipe();
  let code: number = EXIT.ok;
  // LOG_LEVEL=debug (env, .env or --log-level) adds the stack trace to a runtime error
  let logLevel = process.env.LOG_LEVEL;
  const program = new Command('influencer-node')
    .description('Tracks follower counts of many influencers once a minute across a cluster of peer nodes.')
    .version(VERSION, '-v, --version', 'print the version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({
      outputError: (str, write) =>
        write(
          `influencer-node: ${str
            .replace(/^error: /, '')
            .replace(/\s*\n\s*/g, ' ')
            .trim()}\n`,
        ),
    })
    .addHelpText(
      'after',
      `
Examples:
  $ influencer-node mock                    # a local Mockstagram API on :3000
  $ influencer-node start                   # run one node of the cluster
  $ influencer-node status                  # the ring: members, shares, health
  $ influencer-node show 1000042            # one influencer's counts and timeline
  $ influencer-node serve                   # the read API and the dashboard on :8080
  $ influencer-node demo                    # mock + 3 nodes + dashboard, all on this machine
  $ influencer-node setup                   # install the redis-server and FerretDB demo and tests use
  $ influencer-node migrate                 # convert the timeline of an older version

Exit codes: 0 ok, 1 runtime failure (show: not found), 2 usage or configuration error, 3 show: no data yet.
Settings come from CLI flags, then the environment, then a .env file, then defaults: \`<command> --help\`
lists each with its variable and default.`,
    );

  const run =
    (action: () => Promise<{ default: Action } | Action>): ((...a: unknown[]) => Promise<void>) =>
    async (...a: unknown[]) => {
      const cmd = a[a.length - 1] as Command;
      const opts = givenOptions(cmd);
      const config = loadConfig(opts);
      logLevel = config.logLevel;
      const loaded = await action();
      const fn = typeof loaded === 'function' ? loaded : loaded.default;
      const result = await fn(config, opts, cmd.args);
      if (typeof result === 'number') code = result;
    };

  addSettingOptions(
    program
      .command('start')
      .description('run a node: join the cluster, poll the pks it owns, store samples in MongoDB')
      .addHelpText(
        'after',
        `
Examples:
  $ influencer-node start
  $ NODE_ID=node-1 INTERVAL_MS=60000 influencer-node start
  $ influencer-node start --node-weight 2 --concurrency 512

SIGINT/SIGTERM stops gracefully (leave the ring, flush every sample); a second signal exits at once.`,
      ),
  ).action(run(async () => (await import('./commands/start.js')).startCommand));

  addSettingOptions(
    program
      .command('status')
      .description('show the cluster from Redis: members, ring shares, health and figures')
      .option('--json', 'print JSON for scripts (with --watch: one document per line, NDJSON)')
      .option('--watch', 'print again every second until Ctrl-C (clearing the screen only on a terminal)')
      .option('--pk <pk>', 'show which member owns this pk, and why')
      .addHelpText(
        'after',
        `
Examples:
  $ influencer-node status
  $ influencer-node status --pk 1000042
  $ influencer-node status --json | jq '.members[].owned'
  $ influencer-node status --watch
  $ influencer-node status --watch --json | jq -c '.summary'`,
      ),
  ).action(run(async () => (await import('./commands/status.js')).statusCommand));

  addSettingOptions(
    program
      .command('show')
      .description('print one influencer: latest counts, ratio, average, min, max and its timeline')
      .argument('<pk>', 'influencer pk')
      .option('--from <time>', 'start of the range: ISO time with an offset, or epoch ms (default one hour ago)')
      .option('--to <time>', 'end of the range (default now)')
      .option('--json', 'print JSON')
      .addHelpText(
        'after',
        `
Examples:
  $ influencer-node show 1000042
  $ influencer-node show 1000042 --from 2026-11-27T10:00Z --to 2026-11-27T12:00+01:00
  $ influencer-node show 1000042 --json | jq '.points | length'

Exit codes: 0 found, 1 not tracked by this cluster (outside PK_MIN..PK_MAX) or a server unreachable,
2 not a pk, 3 tracked but no sample stored yet.`,
      ),
  ).action(run(async () => (await import('./commands/show.js')).showCommand));

  addSettingOptions(
    program
      .command('mock')
      .description('run a Mockstagram-compatible API for development, tests and benchmarks')
      .option('--port <n>', 'port to listen on', '3000')
      .option('--host <host>', 'address to bind', '127.0.0.1')
      .option('--count <n>', 'number of influencers, from PK_MIN', '1000000')
      .option('--seed <n>', 'seed for reproducible values and faults')
      .option('--suspicious-delay-scale <x>', 'scale of the is_suspicious delay (1 = about a second, 0 = none)', '1')
      .option('--latency-ms <n>', 'added latency per request', '0')
      .option('--jitter-ms <n>', 'plus up to this much random latency', '0')
      .option('--error-rate <r>', 'share of requests answered 503', '0')
      .option('--rate-limit-rate <r>', 'share answered 429 with Retry-After', '0')
      .option('--retry-after <s>', 'Retry-After seconds on 429', '1')
      .option('--hang-rate <r>', 'share of requests never answered', '0')
      .option('--malformed-rate <r>', 'share answered with broken JSON', '0')
      .option('--bad-field-rate <r>', 'share answered with a missing or wrong-typed field', '0')
      .addHelpText(
        'after',
        `
Examples:
  $ influencer-node mock
  $ influencer-node mock --port 3001 --count 10000 --seed 7
  $ influencer-node mock --error-rate 0.05 --rate-limit-rate 0.01 --latency-ms 20 --jitter-ms 30`,
      ),
  ).action(run(async () => (await import('./commands/mock.js')).mockCommand));

  addSettingOptions(
    program
      .command('serve')
      .description('serve the read API (JSON) and the dashboard over HTTP')
      .option('--port <n>', 'port to listen on (default SERVE_PORT)')
      .option('--host <host>', 'address to bind (default SERVE_HOST)')
      .addHelpText(
        'after',
        `
Examples:
  $ influencer-node serve                              # http://127.0.0.1:8080/
  $ influencer-node serve --host 0.0.0.0 --port 80
  $ curl -s localhost:8080/api/v1/influencers/1000042
  $ curl -s 'localhost:8080/api/v1/influencers?sort=growth&limit=20'

Routes (OpenAPI 3.1 document at /api/openapi.json): GET /api/v1/influencers/{pk},
/api/v1/influencers/{pk}/timeline?from&to, /api/v1/influencers?sort&limit, /api/v1/stats,
/api/v1/cluster (the same without /v1 too); /healthz, /readyz, /metrics; the dashboard at /.`,
      ),
  ).action(run(async () => (await import('./commands/serve.js')).serveCommand));

  addSettingOptions(
    program
      .command('migrate')
      .description('convert the timeline of the previous layout (one document per sample) to buckets; resumable')
      .option('--drop', 'drop the old timeline collection once it is converted')
      .addHelpText(
        'after',
        `
Examples:
  $ influencer-node migrate                 # convert; a second run does nothing
  $ influencer-node migrate --drop          # and drop the old collection

Run it once after upgrading from a version that stored one document per sample, with the nodes
of the new version running or not. Until it has run, reads of that data scan the old collection.`,
      ),
  ).action(run(async () => (await import('./commands/migrate.js')).migrateCommand));

  addSettingOptions(
    program
      .command('demo')
      .description(
        'run a whole cluster on this machine: the mock, N nodes, the dashboard, and Redis and FerretDB if none is set',
      )
      .option('--nodes <n>', 'number of nodes (child processes)', '3')
      .option('--pks <n>', 'number of influencers, from PK_MIN', '10000')
      .option('--port <n>', 'dashboard port (default SERVE_PORT)')
      .option('--host <host>', 'dashboard address to bind (default SERVE_HOST)')
      .option('--mock-port <n>', 'port of the bundled mock (0 = a free one)', '0')
      .option('--redis-cluster <masters>', 'start a Redis Cluster of this many masters instead of one redis-server')
      .addHelpText(
        'after',
        `
Examples:
  $ influencer-node demo                                   # 3 nodes, 10,000 pks, one sample a minute
  $ influencer-node demo --nodes 2 --pks 500 --interval-ms 2000
  $ influencer-node demo --data-dir /tmp/demo              # its servers' data there, not in ~/.local/share
  $ REDIS_URL=redis://10.0.0.5:6379 influencer-node demo --port 9090
  $ influencer-node demo --redis-cluster 3                 # its own Redis Cluster of 3 masters

Without REDIS_URL / MONGO_URL, and with nothing answering at their default addresses, it starts its
own redis-server and FerretDB (installing them first if they are missing, as \`setup\` does).
Ctrl-C stops the nodes (they flush every sample), then the dashboard, the mock, and the servers it started.`,
      ),
  ).action(run(async () => (await import('./commands/demo.js')).demoCommand));

  addSettingOptions(
    program
      .command('setup')
      .description(
        'find or install the redis-server and FerretDB that demo and the tests start (apt-get as root, a Go build)',
      )
      .option('--check', 'only report what is there: exit 0 when both are, 1 otherwise')
      .option('--json', 'with --check: print the report as JSON')
      .addHelpText(
        'after',
        `
Examples:
  $ influencer-node setup              # install what is missing; a second run does nothing
  $ influencer-node setup --check      # report only
  $ influencer-node setup --check --json | jq '.servers[].found'

redis-server: Debian's package, installed with apt-get when run as root (otherwise it prints the
command to run). FerretDB ${FERRET_VERSION} (SQLite backend): built with the Go toolchain into
$XDG_CACHE_HOME/influencer-node (default ~/.cache/influencer-node), a few minutes, once. A working
ferretdb on PATH or in $GOPATH/bin is used as it is.`,
      ),
  ).action(run(async () => (await import('./commands/setup.js')).setupCommand));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return EXIT.usage;
    }
    if (err instanceof SetupError) {
      for (const line of err.lines) process.stderr.write(`influencer-node: ${line}\n`);
      for (const line of err.tail) process.stderr.write(`  | ${line}\n`);
      return EXIT.failure;
    }
    if (err instanceof ConfigError || err instanceof UsageError || err instanceof LayoutMismatch) {
      process.stderr.write(`influencer-node: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(
      `influencer-node: ${String((err as Error).message)
        .replace(/\s*\n\s*/g, ' ')
        .trim()}\n`,
    );
    if (logLevel === 'debug' || logLevel === 'trace') process.stderr.write(`${(err as Error).stack}\n`);
    return EXIT.failure;
  }
}
