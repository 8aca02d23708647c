// Gives each test file real servers: those named by REDIS_URL / MONGO_URL when set, otherwise a
// throwaway redis-server and FerretDB (SQLite backend) on free ports in a temp dir, stopped when
// the file's tests end. Every call of `services()` hands out its own key prefix and database.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Db, MongoClient } from 'mongodb';
import { ferretCommand, freePort, redisCommand } from '../../bench/services.js';
import { createLogger } from '../../lib/log.js';
import { connectMongo, createMongo } from '../../lib/mongo.js';
import { connectRedis, createRedis } from '../../lib/redis.js';

export interface Services {
  redisUrl: string;
  mongoUrl: string;
  /** unique per call: use as CLUSTER (Redis key prefix) */
  cluster: string;
  /** unique per call: use as MONGO_DB */
  mongoDb: string;
}

export interface Server {
  url: string;
  port: number;
  process?: ChildProcess;
  stop(): Promise<void>;
  /** for fault tests: stop and start the same server on the same port, keeping its data dir */
  restart(): Promise<void>;
  down(): Promise<void>;
  up(): Promise<void>;
}

/** What owns the servers: a tap test (they stop when its file's tests end), or a script's own scope. */
export interface Owner {
  teardown(fn: () => unknown): void;
  /** a subtest's parent: servers live until the root ends */
  parent?: unknown;
}

const started: Server[] = [];
let redisServer: Promise<Server> | undefined;
let mongoServer: Promise<Server> | undefined;

/** Servers for a test: `given` URLs (fault tests bring servers they restart), else shared ones. */
export async function services(t: Owner, given: { redisUrl?: string; mongoUrl?: string } = {}): Promise<Services> {
  registerTeardown(t);
  const redisUrl = given.redisUrl || process.env.REDIS_URL || (await (redisServer ??= startRedis())).url;
  const mongoUrl = given.mongoUrl || process.env.MONGO_URL || (await (mongoServer ??= startFerret())).url;
  const id = randomBytes(4).toString('hex');
  return { redisUrl, mongoUrl, cluster: `t${id}`, mongoDb: `t_${id}` };
}

/** `services(t)` with clients connected by the product's own connection code, closed when `t` ends. */
export async function connected(t: Owner, name: string): Promise<Services & { redis: Redis; mongo: MongoClient; db: Db }> {
  const svc = await services(t);
  const log = createLogger('silent');
  const redis = createRedis(svc.redisUrl, log, name);
  await connectRedis(redis, svc.redisUrl, log);
  const mongo = createMongo(svc.mongoUrl);
  t.teardown(async () => { redis.disconnect(); await mongo.close(); });
  const db = await connectMongo(mongo, svc.mongoUrl, svc.mongoDb, log);
  return { ...svc, redis, mongo, db };
}

let teardownRegistered = false;
function registerTeardown(t: Owner): void {
  if (teardownRegistered) return;
  teardownRegistered = true;
  // the root test ends after every subtest of the file
  let root = t;
  while (root.parent) root = root.parent as Owner;
  root.teardown(async () => { await Promise.all(started.map((s) => s.stop())); });
}

export { freePort };

/** Starts redis-server on a free port, without persistence. */
export async function startRedis(port?: number): Promise<Server> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'inode-redis-'));
  const { bin, args } = redisCommand(p, dir);
  return launch(`redis://127.0.0.1:${p}`, p, dir, () => spawn(bin, args, { stdio: 'ignore' }));
}

/** Starts FerretDB 1.24 with its SQLite backend on a free port; its data lives in a temp dir. */
export async function startFerret(port?: number): Promise<Server> {
  const p = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'inode-ferret-'));
  const { bin, args } = ferretCommand(p, dir);
  return launch(`mongodb://127.0.0.1:${p}`, p, dir, () => spawn(bin, args, { stdio: 'ignore' }));
}

async function launch(url: string, port: number, dir: string, run: () => ChildProcess): Promise<Server> {
  let child: ChildProcess | undefined;
  const server: Server = {
    url,
    port,
    async stop() {
      await kill(child);
      child = undefined;
      const i = started.indexOf(server);
      if (i >= 0) started.splice(i, 1);
      rmSync(dir, { recursive: true, force: true });
    },
    async restart() {
      await server.down();
      await server.up();
    },
    async down() {
      await kill(child);
    },
    async up() {
      child = run();
      server.process = child;
      await waitForPort(port);
    },
  };
  child = run();
  server.process = child;
  started.push(server);
  await waitForPort(port);
  return server;
}

async function kill(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

export async function waitForPort(port: number, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const sock = connect(port, '127.0.0.1');
      sock.once('connect', () => { sock.destroy(); resolve(true); });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
