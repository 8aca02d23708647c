import calculateSlot from 'cluster-key-slot';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { maskUrl } from './mask-url.js';
import { StateLog, type Logger } from './log.js';
import { sleep } from './util.js';

/** A connection to one Redis or to a Redis Cluster: every part of the product works on either. */
export type RedisClient = Redis | Cluster;

/** A Redis Cluster by its seed nodes: host:port or redis[s]://[user:password@]host:port each. */
export interface ClusterTarget {
  clusterNodes: readonly string[];
}

/** Where Redis is: one server's URL, or a Redis Cluster. */
export type RedisTarget = string | ClusterTarget;

/** The target a config names: its Redis Cluster when REDIS_CLUSTER_NODES is set, else REDIS_URL. */
export function redisTarget(c: { redisUrl: string; redisClusterNodes: readonly string[] }): RedisTarget {
  return c.redisClusterNodes.length > 0 ? { clusterNodes: c.redisClusterNodes } : c.redisUrl;
}

/** The target for logs and messages: passwords masked. */
export function describeTarget(target: RedisTarget): string {
  return typeof target === 'string'
    ? maskUrl(target)
    : `Redis Cluster ${target.clusterNodes.map((n) => maskUrl(n)).join(',')}`;
}

/** The seed nodes as ioredis takes them, with the credentials and TLS of the first entry that names them. */
function clusterSeeds(target: ClusterTarget): { nodes: { host: string; port: number }[]; options: RedisOptions } {
  const urls = target.clusterNodes.map((n) => new URL(/^rediss?:\/\//.test(n) ? n : `redis://${n}`));
  const withAuth = urls.find((u) => u.password || u.username);
  const options: RedisOptions = {};
  if (withAuth?.password) options.password = decodeURIComponent(withAuth.password);
  if (withAuth?.username) options.username = decodeURIComponent(withAuth.username);
  if (urls.some((u) => u.protocol === 'rediss:')) options.tls = {};
  return { nodes: urls.map((u) => ({ host: u.hostname, port: Number(u.port) })), options };
}

function clusterClient(target: ClusterTarget, redisOptions: RedisOptions, options: ClusterOptions): Cluster {
  const seeds = clusterSeeds(target);
  return new Cluster(seeds.nodes, { ...options, redisOptions: { ...seeds.options, ...redisOptions } });
}

/**
 * A Redis connection that reconnects for ever with capped backoff and fails commands at once
 * while disconnected (callers keep working on their last view instead of queueing).
 * rediss:// URLs get TLS; passwords in the URL are used and never logged. Connections given one
 * `state` log an outage once between them; failures before the first connect are left to
 * `connectRedis`, which says once that it waits. On a Redis Cluster the client follows slot moves
 * and failovers (MOVED, ASK, TRYAGAIN are retried by ioredis) and fails a command that finds no
 * master for its slot.
 */
export function createRedis(target: string, log: Logger, name: string, extra?: RedisOptions, state?: StateLog): Redis;
export function createRedis(
  target: RedisTarget,
  log: Logger,
  name: string,
  extra?: RedisOptions,
  state?: StateLog,
): RedisClient;
export function createRedis(
  target: RedisTarget,
  log: Logger,
  name: string,
  extra: RedisOptions = {},
  state = new StateLog(log, 'redis'),
): RedisClient {
  let connected = false;
  const options: RedisOptions = {
    connectionName: name,
    maxRetriesPerRequest: 1,
    connectTimeout: 3000,
    // a Redis that stops answering (frozen, a black-holed connection) fails commands instead of hanging them
    commandTimeout: 10_000,
    retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
  const redis: RedisClient =
    typeof target === 'string'
      ? new Redis(target, { ...options, lazyConnect: true, enableOfflineQueue: false, ...extra })
      : clusterClient(
          target,
          { ...options, ...extra },
          {
            lazyConnect: true,
            enableOfflineQueue: false,
            clusterRetryStrategy: options.retryStrategy,
            // a failover or a slot move: ask again shortly rather than fail the command at once
            retryDelayOnFailover: 200,
            retryDelayOnClusterDown: 300,
            retryDelayOnTryAgain: 100,
            maxRedirections: 16,
            slotsRefreshTimeout: 2000,
          },
        );
  const where = describeTarget(target);
  redis.on('ready', () => {
    connected = true;
    state.set('up', { url: where, conn: name });
  });
  redis.on('error', (err: Error) => {
    if (connected) state.set('down', { url: where, conn: name, err: err.message }, 'warn');
  });
  redis.on('end', () => state.set('closed', { conn: name }));
  return redis;
}

/**
 * A connection for a command that runs once (status, show, a reachability check): it does not
 * reconnect and fails commands at once. Its error events are swallowed; `cause()` gives the first
 * one, which names the real reason (ECONNREFUSED, …) where connect() only says "Connection is closed.".
 */
export function createOneShotRedis(target: string, timeoutMs?: number): Redis & { cause: () => Error | undefined };
export function createOneShotRedis(
  target: RedisTarget,
  timeoutMs?: number,
): RedisClient & { cause: () => Error | undefined };
export function createOneShotRedis(
  target: RedisTarget,
  timeoutMs = 3000,
): RedisClient & { cause: () => Error | undefined } {
  const options: RedisOptions = { connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null };
  const redis: RedisClient =
    typeof target === 'string'
      ? new Redis(target, { ...options, lazyConnect: true, enableOfflineQueue: false })
      : clusterClient(target, options, {
          lazyConnect: true,
          enableOfflineQueue: false,
          clusterRetryStrategy: () => null,
          slotsRefreshTimeout: timeoutMs,
        });
  let first: Error | undefined;
  redis.on('error', (err: Error) => {
    first ??= err;
  });
  return Object.assign(redis, { cause: () => first });
}

/** Connects, retrying every second while `signal` is not aborted; logs once that it waits. */
export async function connectRedis(
  redis: RedisClient,
  target: RedisTarget,
  log: Logger,
  signal?: AbortSignal,
): Promise<void> {
  let warned = false;
  // connect() only says "Connection is closed."; the error event carries the cause (ECONNREFUSED, ...)
  let cause: Error | undefined;
  const onAnyError = (err: Error): void => {
    cause = err;
  };
  redis.on('error', onAnyError);
  try {
    for (;;) {
      try {
        if (redis.status === 'wait' || redis.status === 'end') await redis.connect();
        else if (redis.status !== 'ready')
          await new Promise<void>((resolve, reject) => {
            const onReady = (): void => {
              redis.off('error', onError);
              resolve();
            };
            const onError = (err: Error): void => {
              redis.off('ready', onReady);
              reject(err);
            };
            redis.once('ready', onReady);
            redis.once('error', onError);
          });
        if (warned) log.info({ url: describeTarget(target) }, 'Redis reachable');
        return;
      } catch (err) {
        if (signal?.aborted) throw err;
        if (!warned)
          log.warn(
            { url: describeTarget(target), err: (cause ?? (err as Error)).message },
            'Redis unreachable; retrying every second',
          );
        warned = true;
        await sleep(1000, signal);
      }
    }
  } finally {
    redis.off('error', onAnyError);
  }
}

/** Whether `redis` is a Redis Cluster client. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
}

/** The connection to the server holding `key`: the client itself on one Redis, the slot's master on a cluster. */
export function serverOf(redis: RedisClient, key: string): Redis {
  if (!isCluster(redis)) return redis;
  const master = redis.slots[calculateSlot(key)]?.[0];
  const node = master && redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === master);
  if (!node) throw new Error(`no master known for key ${key} (the cluster's slots are not all served)`);
  return node;
}

/** Every server holding keys: the client itself, or each master of a cluster. */
export function servers(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/** Every key matching `pattern` (SCAN on each server holding keys), in batches. */
export async function* scanKeys(redis: RedisClient, pattern: string, count = 1000): AsyncGenerator<string[]> {
  for (const server of servers(redis)) {
    let cursor = '0';
    do {
      const [next, batch] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      if (batch.length > 0) yield batch;
    } while (cursor !== '0');
  }
}

/** Deletes `keys` (UNLINK: freed in the background): a call per hash slot on a Redis Cluster, else per thousand. */
export async function unlinkKeys(redis: RedisClient, keys: readonly string[]): Promise<number> {
  const groups = new Map<number, string[]>();
  keys.forEach((key, i) => {
    const group = isCluster(redis) ? calculateSlot(key) : Math.floor(i / 1000);
    let list = groups.get(group);
    if (!list) groups.set(group, (list = []));
    list.push(key);
  });
  const counts = await Promise.all([...groups.values()].map((list) => redis.unlink(...list)));
  return counts.reduce((a, b) => a + b, 0);
}
