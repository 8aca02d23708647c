import { createOneShotRedis, describeTarget, redisTarget, servers, type RedisTarget } from '../shared/redis.js';
import { MongoClient } from 'mongodb';
import type { Config } from './config.js';
import { maskUrl } from '../shared/mask-url.js';

/** A server a command needs and cannot reach, with how to get one. */
export interface Unreachable {
  server: 'Redis' | 'MongoDB';
  url: string;
  error: string;
  hint: string;
}

const HINTS = {
  Redis: 'start Redis ≥ 6 there, or set REDIS_URL to one that runs (unset, `influencer-node demo` starts its own)',
  MongoDB:
    'start MongoDB 5+ or FerretDB 1.24 there, or set MONGO_URL to one that runs (unset, `influencer-node demo` starts its own)',
} as const;

/** Tries Redis and MongoDB once each (in parallel, `timeoutMs` each); resolves to the ones that did not answer. */
export async function unreachableServers(config: Config, timeoutMs = 3000): Promise<Unreachable[]> {
  const [redis, mongo] = await Promise.all([
    pingRedis(redisTarget(config), timeoutMs),
    pingMongo(config.mongoUrl, timeoutMs),
  ]);
  const out: Unreachable[] = [];
  if (redis) out.push({ server: 'Redis', url: describeTarget(redisTarget(config)), error: redis, hint: HINTS.Redis });
  if (mongo) out.push({ server: 'MongoDB', url: maskUrl(config.mongoUrl), error: mongo, hint: HINTS.MongoDB });
  return out;
}

/** One line per unreachable server: which, where, why, and how to start one. */
export function describeUnreachable(u: Unreachable): string {
  return `${u.server} unreachable at ${u.url} (${u.error}): ${u.hint}`;
}

/** null when Redis (one server, or every master of a cluster) answers PING at `target`, else why not. */
export async function pingRedis(target: RedisTarget, timeoutMs: number): Promise<string | null> {
  const redis = createOneShotRedis(target, timeoutMs);
  try {
    await redis.connect();
    await Promise.all(servers(redis).map((server) => server.ping()));
    return null;
  } catch (err) {
    return (redis.cause() ?? (err as Error)).message;
  } finally {
    redis.disconnect();
  }
}

/** null when MongoDB answers ping at `url`, else why not. */
export async function pingMongo(url: string, timeoutMs: number): Promise<string | null> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: timeoutMs, connectTimeoutMS: timeoutMs });
  try {
    await client.connect();
    await client.db('admin').command({ ping: 1 });
    return null;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.close().catch(() => undefined);
  }
}
