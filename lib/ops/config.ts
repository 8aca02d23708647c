import { homedir, hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { bucketProblem } from '../storage/format/layout.js';
import { MAX_APPLY_SAMPLES } from '../storage/format/codec.js';
import { MAX_UNIVERSE } from '../ring/pk-universe.js';
import { MAX_WEIGHT, MIN_WEIGHT } from '../ring/ring.js';
import { NAME_PATTERN } from '../shared/keys.js';
import { maskUrl } from '../shared/mask-url.js';

/** A setting that cannot be used: the CLI prints `message` alone and exits with code 2. */
export class ConfigError extends Error {
  readonly exitCode = 2;
}

type Kind =
  | 'url'
  | 'int'
  | 'number'
  | 'name'
  | 'level'
  | 'host'
  | 'bool'
  | 'string'
  | 'path'
  | 'origins'
  | 'redisNodes'
  | 'choice';

export interface Setting {
  env: string;
  flag: string;
  kind: Kind;
  def: (env: NodeJS.ProcessEnv) => string | undefined;
  /** the default as help, .env.example and the README show it, where it depends on the machine */
  shown?: string;
  help: string;
  min?: number;
  max?: number;
  protocols?: string[];
  choices?: readonly string[];
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Every setting, in the order of the README table and .env.example. */
export const SETTINGS = {
  redisUrl: {
    env: 'REDIS_URL',
    flag: 'redis-url',
    kind: 'url',
    protocols: ['redis:', 'rediss:'],
    def: () => 'redis://127.0.0.1:6379',
    help: 'Redis holding membership, events, locks (rediss:// for TLS; a password may be in the URL)',
  },
  redisClusterNodes: {
    env: 'REDIS_CLUSTER_NODES',
    flag: 'redis-cluster-nodes',
    kind: 'redisNodes',
    def: () => '',
    help: 'seed nodes of a Redis Cluster (host:port or redis[s]://[:password@]host:port, comma-separated); when set, REDIS_URL is not used',
  },
  mongoUrl: {
    env: 'MONGO_URL',
    flag: 'mongo-url',
    kind: 'url',
    protocols: ['mongodb:', 'mongodb+srv:'],
    def: () => 'mongodb://127.0.0.1:27017',
    help: 'MongoDB (5+) or FerretDB (1.24+) storing influencers and timelines',
  },
  mongoDb: { env: 'MONGO_DB', flag: 'mongo-db', kind: 'name', def: () => 'influencer', help: 'database name' },
  mockstagramUrl: {
    env: 'MOCKSTAGRAM_URL',
    flag: 'mockstagram-url',
    kind: 'url',
    protocols: ['http:', 'https:'],
    def: () => 'http://127.0.0.1:3000',
    help: 'base URL of the Mockstagram API',
  },
  cluster: {
    env: 'CLUSTER',
    flag: 'cluster',
    kind: 'name',
    def: () => 'influencer',
    help: 'Redis key prefix: clusters with different names share one Redis without meeting',
  },
  nodeId: {
    env: 'NODE_ID',
    flag: 'node-id',
    kind: 'name',
    def: () => `${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`,
    shown: '<hostname>-<pid>-<random>',
    help: "this node's id, unique in the cluster (the systemd unit sets <hostname>-<instance>)",
  },
  // the ring's bounds too (lib/ring/ring.ts): a member card outside them is unreadable
  nodeWeight: {
    env: 'NODE_WEIGHT',
    flag: 'node-weight',
    kind: 'number',
    min: MIN_WEIGHT,
    max: MAX_WEIGHT,
    def: () => '1',
    help: `share of the ring relative to other nodes (2 = twice the pks; ${MIN_WEIGHT} to ${MAX_WEIGHT})`,
  },
  pkMin: {
    env: 'PK_MIN',
    flag: 'pk-min',
    kind: 'int',
    min: 0,
    def: () => '1000000',
    help: 'first influencer pk tracked',
  },
  pkMax: {
    env: 'PK_MAX',
    flag: 'pk-max',
    kind: 'int',
    min: 0,
    def: () => '1999999',
    help: 'last influencer pk tracked (at most 2,097,152 pks in all)',
  },
  intervalMs: {
    env: 'INTERVAL_MS',
    flag: 'interval-ms',
    kind: 'int',
    min: 100,
    def: () => '60000',
    help: 'sampling resolution: each pk is fetched once per interval (aligned to UTC)',
  },
  heartbeatTtlMs: {
    env: 'HEARTBEAT_TTL_MS',
    flag: 'heartbeat-ttl-ms',
    kind: 'int',
    min: 300,
    def: () => '10000',
    help: "TTL of a node's membership key; refreshed every TTL/3",
  },
  concurrency: {
    env: 'CONCURRENCY',
    flag: 'concurrency',
    kind: 'int',
    min: 1,
    def: () => '256',
    help: 'most Mockstagram requests in flight per node',
  },
  requestTimeoutMs: {
    env: 'REQUEST_TIMEOUT_MS',
    flag: 'request-timeout-ms',
    kind: 'int',
    min: 10,
    def: () => '5000',
    help: 'timeout of one Mockstagram request',
  },
  flushMaxSamples: {
    env: 'FLUSH_MAX_SAMPLES',
    flag: 'flush-max-samples',
    kind: 'int',
    min: 1,
    max: MAX_APPLY_SAMPLES,
    def: () => '1000',
    help: 'write a batch to MongoDB once this many samples are buffered (at most what one apply call takes)',
  },
  flushMaxAgeMs: {
    env: 'FLUSH_MAX_AGE_MS',
    flag: 'flush-max-age-ms',
    kind: 'int',
    min: 10,
    def: () => '1000',
    help: '…or once the oldest buffered sample is this old',
  },
  writeConcurrency: {
    env: 'WRITE_CONCURRENCY',
    flag: 'write-concurrency',
    kind: 'int',
    min: 1,
    max: 64,
    def: () => '3',
    help: 'batches written to MongoDB at once (their Redis totals steps keep batch order)',
  },
  bufferMaxSamples: {
    env: 'BUFFER_MAX_SAMPLES',
    flag: 'buffer-max-samples',
    kind: 'int',
    min: 1,
    def: () => '2000000',
    help: 'samples held while MongoDB is unreachable; past it the oldest are dropped (counted, logged)',
  },
  bucketMs: {
    env: 'BUCKET_MS',
    flag: 'bucket-ms',
    kind: 'int',
    min: 1000,
    def: () => '3600000',
    help:
      'period of one timeline bucket (a document per pk and period): ' +
      'a multiple of INTERVAL_MS dividing a day; fixed for a database',
  },
  timelineRetentionDays: {
    env: 'TIMELINE_RETENTION_DAYS',
    flag: 'timeline-retention-days',
    kind: 'int',
    min: 1,
    max: 36500,
    def: () => '30',
    help: 'days one-interval points (buckets) are kept',
  },
  rollupRetentionDays: {
    env: 'ROLLUP_RETENTION_DAYS',
    flag: 'rollup-retention-days',
    kind: 'int',
    min: 1,
    max: 36500,
    def: () => '730',
    help: 'days the per-bucket rollups (hourly last, min, max, mean) are kept',
  },
  logRetentionHours: {
    env: 'LOG_RETENTION_HOURS',
    flag: 'log-retention-hours',
    kind: 'int',
    min: 1,
    max: 8760,
    def: () => '24',
    help: "hours a closed period's durable log is kept after its buckets are written",
  },
  metricsPort: {
    env: 'METRICS_PORT',
    flag: 'metrics-port',
    kind: 'int',
    min: 0,
    max: 65535,
    def: () => '0',
    help: 'port of the HTTP server for Prometheus /metrics, /healthz and /readyz (0 = off; the systemd unit sets 960<instance>)',
  },
  metricsHost: {
    env: 'METRICS_HOST',
    flag: 'metrics-host',
    kind: 'host',
    def: () => '127.0.0.1',
    help: 'address the metrics server listens on (0.0.0.0 or :: for every interface)',
  },
  suspiciousIntervalMs: {
    env: 'SUSPICIOUS_INTERVAL_MS',
    flag: 'suspicious-interval-ms',
    kind: 'int',
    min: 0,
    def: () => '86400000',
    help: 'each owned pk is checked with is_suspicious once per this period, spread over it (0 = off)',
  },
  suspiciousConcurrency: {
    env: 'SUSPICIOUS_CONCURRENCY',
    flag: 'suspicious-concurrency',
    kind: 'int',
    min: 1,
    def: () => '4',
    help: 'most is_suspicious requests in flight per node',
  },
  suspiciousTimeoutMs: {
    env: 'SUSPICIOUS_TIMEOUT_MS',
    flag: 'suspicious-timeout-ms',
    kind: 'int',
    min: 10,
    def: () => '15000',
    help: 'timeout of one is_suspicious request',
  },
  suspiciousPost: {
    env: 'SUSPICIOUS_POST',
    flag: 'suspicious-post',
    kind: 'bool',
    def: () => 'false',
    help: 'use the older POST /api/v1/influencers/is_suspicious (body: the latest counts) instead of GET',
  },
  clockSkewMs: {
    env: 'CLOCK_SKEW_MS',
    flag: 'clock-skew-ms',
    kind: 'int',
    min: -3_600_000,
    max: 3_600_000,
    def: () => '0',
    help: "test hook: offsets this node's clock by this many ms, as if its system clock were wrong (0 = off)",
  },
  dataDir: {
    env: 'DATA_DIR',
    flag: 'data-dir',
    kind: 'path',
    def: defaultDataDir,
    shown: '~/.local/share/influencer-node',
    help:
      'where the servers `demo` starts itself keep their data (redis/, ferretdb/); ' +
      'default: $XDG_DATA_HOME/influencer-node, else ~/.local/share/influencer-node',
  },
  serveHost: {
    env: 'SERVE_HOST',
    flag: 'serve-host',
    kind: 'host',
    def: () => '127.0.0.1',
    help: 'address `serve` (the read API and dashboard) listens on (0.0.0.0 or :: for every interface)',
  },
  servePort: {
    env: 'SERVE_PORT',
    flag: 'serve-port',
    kind: 'int',
    min: 0,
    max: 65535,
    def: () => '8080',
    help: 'port of `serve`: the read API, the dashboard, /healthz, /readyz and /metrics',
  },
  corsOrigin: {
    env: 'CORS_ORIGIN',
    flag: 'cors-origin',
    kind: 'origins',
    def: () => '',
    help: 'origins whose pages may read the API (comma-separated, e.g. https://grafana.example.com, or *; empty = CORS off)',
  },
  aptInstall: {
    env: 'APT_INSTALL',
    flag: 'apt-install',
    kind: 'choice',
    choices: ['auto', 'yes', 'no'] as const,
    def: () => 'auto',
    help:
      'whether a missing redis-server is installed with apt-get (as root), after saying what: auto = by ' +
      '`setup` and `demo`, by `npm test` only when CI is set; yes = by `npm test` too; no = never',
  },
  logLevel: {
    env: 'LOG_LEVEL',
    flag: 'log-level',
    kind: 'level',
    def: () => 'info',
    help: `log level: ${LEVELS.join(', ')}`,
  },
} satisfies Record<string, Setting>;

export type SettingName = keyof typeof SETTINGS;

/** What each kind of setting holds once parsed. */
interface KindValue {
  url: string;
  int: number;
  number: number;
  name: string;
  level: string;
  host: string;
  bool: boolean;
  string: string;
  path: string;
  origins: string[];
  redisNodes: string[];
  choice: string;
}

/** A setting's parsed value: one of its choices, or what its kind holds. */
type SettingValue<S> = S extends { kind: 'choice'; choices: readonly (infer C)[] }
  ? C
  : S extends { kind: infer K extends Kind }
    ? KindValue[K]
    : never;

/** The validated settings, one field per entry of SETTINGS, typed by its kind. */
export type Config = { -readonly [K in SettingName]: SettingValue<(typeof SETTINGS)[K]> };

export type AptInstall = Config['aptInstall'];

export { MAX_UNIVERSE };

/**
 * Builds the validated config: CLI flag values (camelCase keys, as commander gives them) win over
 * the environment, which wins over defaults. Throws ConfigError naming the setting, the value and
 * what is allowed.
 */
export function loadConfig(flags: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(SETTINGS) as [SettingName, Setting][]) {
    const fromFlag = flags[key];
    const fromEnv = env[setting.env] !== undefined && env[setting.env] !== '' ? env[setting.env] : undefined;
    const raw = fromFlag !== undefined ? String(fromFlag) : (fromEnv ?? setting.def(env));
    const label = fromFlag !== undefined ? `--${setting.flag}` : setting.env;
    out[key] = parseSetting(label, String(raw), setting);
  }
  const config = out as unknown as Config;
  if (config.pkMin > config.pkMax) {
    throw new ConfigError(`PK_MIN=${config.pkMin} is greater than PK_MAX=${config.pkMax}: PK_MIN must be ≤ PK_MAX`);
  }
  const bucket = bucketProblem(config.intervalMs, config.bucketMs);
  if (bucket) throw new ConfigError(`BUCKET_MS=${config.bucketMs} is not valid: expected ${bucket}`);
  if (config.pkMax - config.pkMin + 1 > MAX_UNIVERSE) {
    const pks = config.pkMax - config.pkMin + 1;
    const allowed = `at most ${MAX_UNIVERSE} pks (PK_MAX - PK_MIN + 1) are allowed`;
    throw new ConfigError(`PK_MAX=${config.pkMax} makes ${pks} pks: ${allowed}`);
  }
  return config;
}

/** One setting from the environment alone, checked as loadConfig checks it (for scripts that take no flags). */
export function readSetting<K extends SettingName>(key: K, env: NodeJS.ProcessEnv = process.env): Config[K] {
  const setting: Setting = SETTINGS[key];
  const raw = env[setting.env] !== undefined && env[setting.env] !== '' ? env[setting.env]! : setting.def(env);
  return parseSetting(setting.env, String(raw), setting) as Config[K];
}

/** Whether a setting was given (flag, environment or .env) rather than left to its default. */
export function isGiven(
  key: SettingName,
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  return flags[key] !== undefined || Boolean(env[SETTINGS[key].env]);
}

function defaultDataDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_DATA_HOME || join(env.HOME || homedir(), '.local', 'share'), 'influencer-node');
}

/** A DNS host name: labels of letters, digits and '-', at most 253 characters in all. */
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

/** The default of a setting as people read it: `shown` where it depends on the machine, else its value. */
export function shownDefault(s: Setting): string {
  return s.shown ?? s.def({}) ?? '';
}

/** An origin as browsers send it: scheme, host and an optional port, nothing after. */
const ORIGIN = /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?$|^https?:\/\/\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

function parseSetting(label: string, raw: string, s: Setting): string | number | boolean | string[] {
  const bad = (allowed: string): never => {
    const shown = s.kind === 'url' || s.kind === 'redisNodes' ? raw.split(',').map(maskUrl).join(',') : raw;
    throw new ConfigError(`${label}=${JSON.stringify(shown)} is not valid: expected ${allowed}`);
  };
  const value = raw.trim();
  switch (s.kind) {
    case 'url': {
      const expected = `a URL starting with ${s.protocols!.map((p) => `${p}//`).join(' or ')}`;
      let url: URL;
      try {
        url = new URL(value);
      } catch {
        return bad(expected);
      }
      if (!s.protocols!.includes(url.protocol)) return bad(expected);
      return value;
    }
    case 'int': {
      const n = Number(value);
      if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(n) || n < (s.min ?? 0) || n > (s.max ?? Infinity)) {
        return bad(s.max === undefined ? `an integer ≥ ${s.min ?? 0}` : `an integer from ${s.min ?? 0} to ${s.max}`);
      }
      return n;
    }
    case 'number': {
      const n = Number(value);
      if (value === '' || !Number.isFinite(n) || n < (s.min ?? 0) || n > (s.max ?? Infinity)) {
        return bad(s.max === undefined ? `a number ≥ ${s.min ?? 0}` : `a number from ${s.min ?? 0} to ${s.max}`);
      }
      return n;
    }
    case 'name':
      if (!NAME_PATTERN.test(value)) return bad('1-128 characters of letters, digits, ".", "_" or "-"');
      return value;
    case 'level':
      if (!LEVELS.includes(value.toLowerCase())) return bad(`one of ${LEVELS.join(', ')}`);
      return value.toLowerCase();
    case 'host':
      if (!isIP(value) && !HOST_NAME.test(value)) return bad('an IP address or a host name');
      return value;
    case 'bool':
      if (/^(true|1|yes|on)$/i.test(value)) return true;
      if (/^(false|0|no|off)$/i.test(value)) return false;
      return bad('true or false');
    case 'string':
      return value;
    case 'choice':
      if (!s.choices!.includes(value)) return bad(`one of ${s.choices!.join(', ')}`);
      return value;
    case 'path':
      if (value === '' || value.includes('\0')) return bad('a directory path');
      return resolve(value);
    case 'redisNodes': {
      const nodes = value === '' ? [] : value.split(',').map((n) => n.trim());
      const expected = 'host:port or redis[s]://[:password@]host:port entries, comma-separated';
      for (const node of nodes) {
        const url = /^rediss?:\/\//.test(node) ? node : `redis://${node}`;
        let parsed: URL;
        try {
          parsed = new URL(url);
        } catch {
          return bad(expected);
        }
        const port = Number(parsed.port);
        if (!parsed.hostname || !Number.isInteger(port) || port < 1 || port > 65535 || parsed.pathname.length > 1)
          return bad(expected);
      }
      return nodes;
    }
    case 'origins': {
      const origins = value === '' ? [] : value.split(',').map((o) => o.trim().replace(/\/$/, ''));
      if (origins.some((o) => o !== '*' && !ORIGIN.test(o))) {
        return bad('origins such as https://grafana.example.com (scheme://host[:port], comma-separated), or *');
      }
      return origins;
    }
  }
}
