import { Command, CommanderError, Option } from 'commander';
import dotenv from 'dotenv';
import { ConfigError, SETTINGS, loadConfig, type Config } from './config.js';
import { VERSION } from './version.js';

/** Exit codes, kept stable for scripts and systemd: see README "Exit codes". */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

type Action = (config: Config, opts: Record<string, unknown>, args: string[]) => Promise<number | void>;

/** Runs the CLI on `argv` (without node and script) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  dotenv.config({ quiet: true });
  let code: number = EXIT.ok;
  const program = new Command('influencer-node')
    .description('Tracks follower counts of many influencers once a minute across a cluster of peer nodes.')
    .version(VERSION, '-v, --version', 'print the version')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ outputError: (str, write) => write(`influencer-node: ${str.replace(/^error: /, '').replace(/\s*\n\s*/g, ' ').trim()}\n`) })
    .addHelpText('after', `
Examples:
  $ influencer-node mock                    # a local Mockstagram API on :3000
  $ influencer-node start                   # run one node of the cluster
  $ influencer-node status                  # the ring: members, shares, health
  $ influencer-node show 1000042            # one influencer's counts and timeline

Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
Settings come from CLI flags, then the environment (and a .env file), then defaults.`);

  const run = (action: () => Promise<{ default: Action } | Action>): ((...a: unknown[]) => Promise<void>) =>
    async (...a: unknown[]) => {
      const cmd = a[a.length - 1] as Command;
      const opts = cmd.opts();
      const config = loadConfig(opts);
      const loaded = await action();
      const fn = typeof loaded === 'function' ? loaded : loaded.default;
      const result = await fn(config, opts, cmd.args);
      if (typeof result === 'number') code = result;
    };

  configOptions(program.command('start'))
    .description('run a node: join the cluster, poll the pks it owns, store samples in MongoDB')
    .addHelpText('after', `
Examples:
  $ influencer-node start
  $ NODE_ID=node-1 INTERVAL_MS=60000 influencer-node start
  $ influencer-node start --node-weight 2 --concurrency 512

SIGINT/SIGTERM stops gracefully (leave the ring, flush every sample); a second signal exits at once.`)
    .action(run(async () => (await import('./commands/start.js')).startCommand));

  configOptions(program.command('status'))
    .description('show the cluster from Redis: members, ring shares, health and figures')
    .option('--json', 'print JSON for scripts')
    .option('--watch', 'refresh every second until Ctrl-C')
    .option('--pk <pk>', 'show which member owns this pk, and why')
    .addHelpText('after', `
Examples:
  $ influencer-node status
  $ influencer-node status --pk 1000042
  $ influencer-node status --json | jq '.members[].owned'
  $ influencer-node status --watch`)
    .action(run(async () => (await import('./commands/status.js')).statusCommand));

  configOptions(program.command('show'))
    .description('print one influencer: latest counts, ratio, average, min, max and its timeline')
    .argument('<pk>', 'influencer pk')
    .option('--from <time>', 'start of the range (ISO time or epoch ms; default one hour ago)')
    .option('--to <time>', 'end of the range (default now)')
    .option('--json', 'print JSON')
    .addHelpText('after', `
Examples:
  $ influencer-node show 1000042
  $ influencer-node show 1000042 --from 2026-11-27T10:00Z --to 2026-11-27T12:00Z
  $ influencer-node show 1000042 --json`)
    .action(run(async () => (await import('./commands/show.js')).showCommand));

  configOptions(program.command('mock'))
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
    .addHelpText('after', `
Examples:
  $ influencer-node mock
  $ influencer-node mock --port 3001 --count 10000 --seed 7
  $ influencer-node mock --error-rate 0.05 --rate-limit-rate 0.01 --latency-ms 20 --jitter-ms 30`)
    .action(run(async () => (await import('./commands/mock.js')).mockCommand));

  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return EXIT.ok;
      if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return EXIT.usage;
    }
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`influencer-node: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`influencer-node: ${(err as Error).message}\n`);
    if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace') process.stderr.write(`${(err as Error).stack}\n`);
    return EXIT.failure;
  }
}

/** A bad command-line value found after parsing (exit code 2). */
export class UsageError extends Error {}

function configOptions(cmd: Command): Command {
  for (const s of Object.values(SETTINGS)) {
    cmd.addOption(new Option(`--${s.flag} <value>`, `${s.help} [env ${s.env}]`));
  }
  return cmd;
}

/** Parses a numeric flag of a command (not a setting), or throws a UsageError naming it. */
export function numberFlag(name: string, raw: unknown, min: number, max = Number.MAX_SAFE_INTEGER, integer = false): number {
  const n = Number(raw);
  if (raw === undefined || raw === '' || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name}=${JSON.stringify(raw)} is not valid: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return n;
}
