// A cluster of real node processes (`influencer-node start`) over the run's shared servers, each
// cluster with its own Redis prefix and database; helpers to read the member cards, wait for the
// ring to settle, align to interval boundaries and sample CPU and RSS of every process involved.
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { viewHash, type MemberCard } from '../lib/cluster/card.js';
import { readMembers } from '../lib/cluster/member-view.js';
import { servers, type RedisClient } from '../lib/shared/redis.js';
import { rssBytes, snapshot, type CpuSnapshot } from './proc.js';
import type { Service } from './services.js';
import { BIN, ROOT, isRunning, stopChild, track } from '../test/kit/children.js';
import { sleep } from '../test/kit/wait.js';
import { NODE_FLAGS } from '../lib/cli/node-flags.js';

export const PK_MIN = 1_000_000;

/** The servers every scenario shares, and clients to read what the nodes publish and store. */
export interface Infra {
  /** the one redis-server, or a Redis Cluster's first master */
  redis: Service;
  /** every Redis master (one: the redis-server), named redis, redis2, ... */
  redisMasters: Service[];
  /** how the nodes find Redis: REDIS_URL, or REDIS_CLUSTER_NODES */
  redisEnv: Record<string, string>;
  ferret: Service;
  mock: Service;
  redisClient: RedisClient;
  mongo: MongoClient;
}

/** The CPU of every Redis master together (their names redis, redis2, ...), from a per-process figure. */
export function redisTotal(byName: ReadonlyMap<string, number>): number | undefined {
  const values = [...byName].filter(([name]) => /^redis\d*$/.test(name)).map(([, v]) => v);
  return values.length ? values.reduce((a, b) => a + b, 0) : undefined;
}

export interface ClusterOptions {
  pks: number;
  intervalMs: number;
  ttlMs: number;
  concurrency: number;
  flushMaxAgeMs?: number;
  /** settings for every node, over the defaults below */
  env?: Record<string, string>;
}

export interface NodeProcess {
  id: string;
  child: ChildProcess & { tail: () => string };
  pid: number;
  /** count of each warning or error the node logged (JSON lines on stderr, level ≥ warn) */
  warnings: Map<string, number>;
}

export class BenchCluster {
  readonly cluster = `b${randomBytes(4).toString('hex')}`;
  readonly dbName = `bench_${this.cluster}`;
  readonly nodes = new Map<string, NodeProcess>();

  constructor(
    readonly infra: Infra,
    readonly opts: ClusterOptions,
  ) {}

  get pkMax(): number {
    return PK_MIN + this.opts.pks - 1;
  }

  env(id: string): NodeJS.ProcessEnv {
    const o = this.opts;
    return {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...this.infra.redisEnv,
      MONGO_URL: this.infra.ferret.url,
      MONGO_DB: this.dbName,
      CLUSTER: this.cluster,
      MOCKSTAGRAM_URL: this.infra.mock.url,
      PK_MIN: String(PK_MIN),
      PK_MAX: String(this.pkMax),
      INTERVAL_MS: String(o.intervalMs),
      HEARTBEAT_TTL_MS: String(o.ttlMs),
      CONCURRENCY: String(o.concurrency),
      ...(o.flushMaxAgeMs ? { FLUSH_MAX_AGE_MS: String(o.flushMaxAgeMs) } : {}),
      // the daily is_suspicious check is not part of the per-interval pipeline: scenario 7 measures it
      SUSPICIOUS_INTERVAL_MS: '0',
      LOG_LEVEL: 'warn',
      ...o.env,
      NODE_ID: id,
    };
  }

  /** `influencer-node start` as node `id`, or another command (`serve`) with the cluster's settings; `nodeArgs`: options for node itself, e.g. `--cpu-prof` */
  spawn(id: string, args = ['start'], nodeArgs: string[] = []): NodeProcess {
    const child = track(process.execPath, [...NODE_FLAGS, ...nodeArgs, BIN, ...args], { cwd: ROOT, env: this.env(id) });
    const node = { id, child, pid: child.pid!, warnings: new Map<string, number>() };
    let partial = '';
    child.stderr?.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        let msg = line.trim();
        try {
          msg = String((JSON.parse(line) as { msg?: unknown }).msg ?? line);
        } catch {
          /* not a log line: keep it whole */
        }
        if (msg) node.warnings.set(msg, (node.warnings.get(msg) ?? 0) + 1);
      }
    });
    this.nodes.set(id, node);
    return node;
  }

  /** What the nodes logged at warn or above, most frequent first: "message ×count (ids)". */
  warnings(): string[] {
    const all = new Map<string, { count: number; ids: Set<string> }>();
    for (const n of this.nodes.values()) {
      for (const [msg, count] of n.warnings) {
        const w = all.get(msg) ?? { count: 0, ids: new Set<string>() };
        w.count += count;
        w.ids.add(n.id);
        all.set(msg, w);
      }
    }
    return [...all]
      .sort((a, b) => b[1].count - a[1].count)
      .slice(0, 8)
      .map(([msg, w]) => `${msg.slice(0, 160)} ×${w.count} (${[...w.ids].join(', ')})`);
  }

  /** Readable member cards by id. */
  async cards(): Promise<Map<string, MemberCard>> {
    // from the member index, as the nodes read it: a SCAN over every key (a hash per pk) would load
    // Redis with the benchmark's own reads
    const parsed = await readMembers(this.infra.redisClient, this.cluster, 'index');
    return new Map(parsed.flatMap((p) => (p.ok ? [[p.card.id, p.card] as const] : [])));
  }

  /** Polls the cards until `done` holds; fails with `what` (and any dead node's stderr) after `timeoutMs`. */
  async waitFor(
    done: (cards: Map<string, MemberCard>) => boolean,
    timeoutMs: number,
    what: string,
    everyMs = 50,
  ): Promise<Map<string, MemberCard>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.assertAlive();
      const cards = await this.cards();
      if (done(cards)) return cards;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(everyMs);
    }
  }

  /** Waits until exactly `ids` are active, agree on the ring, and own every pk between them. */
  settled(ids: string[], timeoutMs = 30_000): Promise<Map<string, MemberCard>> {
    return this.waitFor(
      (cards) => {
        const active = [...cards.values()].filter((c) => c.state === 'active');
        if (active.length !== ids.length || !ids.every((id) => cards.get(id)?.state === 'active')) return false;
        const view = viewHash(active.map((c) => ({ id: c.id, weight: c.weight })));
        const owned = active.reduce((sum, c) => sum + Number(c.stats.owned ?? 0), 0);
        return active.every((c) => c.view === view) && owned === this.opts.pks;
      },
      timeoutMs,
      `${ids.join(', ')} to own all ${this.opts.pks} pks`,
    );
  }

  /** Waits until every node's card was written after `t` (its stats then describe the interval before). */
  cardsAfter(t: number, timeoutMs = 10_000): Promise<Map<string, MemberCard>> {
    const ids = [...this.nodes.values()].filter((n) => isRunning(n.child)).map((n) => n.id);
    return this.waitFor(
      (cards) => ids.every((id) => (cards.get(id)?.heartbeat ?? 0) >= t),
      timeoutMs,
      `cards written after ${new Date(t).toISOString()}`,
      100,
    );
  }

  /** Names and pids of every process whose CPU counts: the nodes, the mock, redis-server and ferretdb. */
  pids(): Map<string, number> {
    const m = new Map<string, number>();
    for (const n of this.nodes.values()) if (isRunning(n.child)) m.set(n.id, n.pid);
    for (const s of [this.infra.mock, ...this.infra.redisMasters, this.infra.ferret]) m.set(s.name, s.child.pid!);
    return m;
  }

  cpu(): CpuSnapshot {
    return snapshot(this.pids());
  }

  rss(id: string): number {
    const n = this.nodes.get(id);
    return (n && rssBytes(n.pid)) ?? 0;
  }

  assertAlive(): void {
    for (const n of this.nodes.values()) {
      if (n.child.exitCode !== null)
        throw new Error(`node ${n.id} exited with code ${n.child.exitCode}: ${n.child.tail().trim().slice(-800)}`);
    }
  }

  /** Graceful stop of the given nodes (all by default) at once; resolves to their exit codes. */
  async stop(ids = [...this.nodes.keys()], timeoutMs = 30_000): Promise<(number | null)[]> {
    return Promise.all(ids.map((id) => stopChild(this.nodes.get(id)!.child, 'SIGTERM', timeoutMs)));
  }

  kill(id: string): void {
    this.nodes.get(id)?.child.kill('SIGKILL');
  }

  /** Stops what is left and drops this cluster's data, so the next step starts on empty servers. */
  async close(): Promise<void> {
    for (const n of this.nodes.values()) if (isRunning(n.child)) await stopChild(n.child, 'SIGKILL');
    await this.infra.mongo
      .db(this.dbName)
      .dropDatabase()
      .catch(() => undefined);
    // a Redis Cluster's client sends FLUSHALL to one master: every master flushes its own slots
    await Promise.all(servers(this.infra.redisClient).map((r) => r.flushall().catch(() => undefined)));
  }
}

/** Median of the finite numbers, or null. */
export function median(xs: number[]): number | null {
  const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return v.length ? v[v.length >> 1]! : null;
}

export const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : NaN);
