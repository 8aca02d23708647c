// A real cluster to break: its own redis-server and FerretDB (so they can be stopped, frozen and
// restarted), the bundled mock in this process (faults switched at run time, restartable on its
// port) and nodes as `influencer-node start` child processes. Knows which processes it killed on
// purpose, so any other exit is a crash, and each node's memory at steady state.
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { activeMembers, viewHash, type ParsedCard } from '../lib/cluster/card.js';
import { readMembers } from '../lib/cluster/member-view.js';
import { startMock, type MockFaults } from '../lib/mock/mockstagram.js';
import { ownedBy } from '../lib/ring/ownership.js';
import { PkUniverse } from '../lib/ring/pk-universe.js';
import { Ring } from '../lib/ring/ring.js';
import { isRunning, waitExit } from '../test/kit/children.js';
import { startCluster, PK_MIN, type TestCluster } from '../test/helpers/cluster.js';
import { intervalStart, sleep } from '../test/kit/wait.js';
import { startFerret, startRedis, startRedisCluster, type Owner, type Server } from '../test/kit/servers.js';
import type { RedisClusterProcess } from '../lib/ops/embedded/redis-cluster.js';

export interface ChaosOptions {
  pks: number;
  intervalMs: number;
  ttlMs: number;
  /** node ids started at once */
  nodes: string[];
  extraEnv?: Record<string, string>;
  /** a Redis Cluster of this many masters, each with this many replicas, instead of one redis-server */
  redisCluster?: { masters: number; replicas: number };
}

/** One `influencer-node start` process and whether the harness ended it on purpose. */
export interface NodeProcess {
  id: string;
  child: ChildProcess & { output: () => string };
  /** set before the harness signals it: an exit then is no crash */
  ending: boolean;
}

export class Chaos {
  readonly universe: PkUniverse;
  /** every process started, live or not */
  readonly processes: NodeProcess[] = [];
  /** VmRSS in kB per node id, measured at steady state before any fault */
  readonly baselineRss = new Map<string, number>();
  /** SIGKILLs so far: each may leave one batch inserted but not counted in the totals */
  kills = 0;
  /** end of the intervals already checked: the next fault's window starts here */
  checkedTo = 0;
  /** ports of Redis Cluster nodes a fault stopped on purpose */
  readonly redisNodesDown = new Set<number>();

  private constructor(
    readonly opts: ChaosOptions,
    readonly cluster: TestCluster,
    private readonly redis: Server | RedisClusterProcess,
    readonly mongoServer: Server,
  ) {
    this.universe = new PkUniverse(PK_MIN, PK_MIN + opts.pks - 1);
  }

  /** Starts the servers and the nodes, waits for a steady ring and records each node's memory. */
  static async start(owner: Owner, opts: ChaosOptions): Promise<Chaos> {
    const rc = opts.redisCluster;
    const [redis, mongoServer] = await Promise.all([
      rc ? startRedisCluster(rc.masters, rc.replicas) : startRedis(),
      startFerret(),
    ]);
    owner.teardown(() => Promise.all([redis.stop(), mongoServer.stop()]));
    const cluster = await startCluster(owner, {
      pks: opts.pks,
      intervalMs: opts.intervalMs,
      ttlMs: opts.ttlMs,
      ...('seeds' in redis ? { redisClusterNodes: redis.seeds } : { redisUrl: redis.url }),
      mongoUrl: mongoServer.url,
      extraEnv: { SUSPICIOUS_INTERVAL_MS: '0', ...opts.extraEnv },
    });
    const chaos = new Chaos(opts, cluster, redis, mongoServer);
    for (const id of opts.nodes) chaos.spawn(id);
    await chaos.waitSteady(60_000);
    // a few intervals of polling before the memory baseline and the first checked interval
    await sleep(3 * opts.intervalMs);
    for (const id of opts.nodes) chaos.baselineRss.set(id, chaos.rssKb(id) ?? 0);
    chaos.checkedTo = chaos.intervalNow() + opts.intervalMs;
    return chaos;
  }

  /** The one redis-server (faults that stop, freeze or restart it); not on a Redis Cluster. */
  get redisServer(): Server {
    if ('seeds' in this.redis) throw new Error('this fault needs one redis-server, not a Redis Cluster');
    return this.redis;
  }

  /** The Redis Cluster (faults that kill a master or move slots). */
  get redisCluster(): RedisClusterProcess {
    if (!('seeds' in this.redis)) throw new Error('this fault needs a Redis Cluster');
    return this.redis;
  }

  /** Servers that exited though no fault stopped them: redis-server (or a cluster node), FerretDB. */
  serversExited(): string[] {
    const exited = (child?: ChildProcess): boolean => !!child && !isRunning(child);
    const out: string[] = [];
    if ('seeds' in this.redis) {
      for (const n of this.redis.nodes)
        if (!this.redisNodesDown.has(n.port) && exited(n.child)) out.push(`redis-server :${n.port} exited`);
    } else if (exited(this.redis.process)) out.push('redis-server exited');
    if (exited(this.mongoServer.process)) out.push('ferretdb exited');
    return out;
  }

  get intervalMs(): number {
    return this.opts.intervalMs;
  }
  get ttlMs(): number {
    return this.opts.ttlMs;
  }

  /** Start of the interval in progress. */
  intervalNow(): number {
    return intervalStart(Date.now(), this.opts.intervalMs);
  }

  spawn(id: string, env: Record<string, string> = {}): NodeProcess {
    const p: NodeProcess = { id, child: this.cluster.spawnNode(id, env), ending: false };
    this.processes.push(p);
    return p;
  }

  /** The live process of a node id. */
  process(id: string): NodeProcess | undefined {
    return this.processes.find((p) => p.id === id && isRunning(p.child));
  }

  /** Ids of the nodes running now. */
  running(): string[] {
    return [...new Set(this.processes.filter((p) => isRunning(p.child)).map((p) => p.id))];
  }

  async kill(id: string): Promise<void> {
    const p = this.mustGet(id);
    p.ending = true;
    this.kills++;
    p.child.kill('SIGKILL');
    await waitExit(p.child, 10_000);
  }

  /** Freezes a node (SIGSTOP), as a long GC or a stopped VM would: it neither runs nor exits. */
  pause(id: string): void {
    this.mustGet(id).child.kill('SIGSTOP');
  }

  /** Thaws a node frozen by pause() (SIGCONT). */
  resume(id: string): void {
    this.mustGet(id).child.kill('SIGCONT');
  }

  /** Graceful stop; resolves to the exit code. */
  async stop(id: string): Promise<number | null> {
    const p = this.mustGet(id);
    p.ending = true;
    p.child.kill('SIGTERM');
    return waitExit(p.child, 90_000);
  }

  /** Processes that exited without being told to, with the end of their output. */
  crashed(): string[] {
    return this.processes
      .filter((p) => !p.ending && !isRunning(p.child))
      .map(
        (p) =>
          `${p.id} (pid ${p.child.pid}) exited with ${p.child.exitCode ?? p.child.signalCode}: ${p.child.output().trim().split('\n').slice(-3).join(' | ')}`,
      );
  }

  /** VmRSS of a running node in kB, read from /proc. */
  rssKb(id: string): number | undefined {
    const pid = this.process(id)?.child.pid;
    if (pid === undefined) return undefined;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) : undefined;
    } catch {
      return undefined;
    }
  }

  async cards(): Promise<ParsedCard[]> {
    return readMembers(this.cluster.redis, this.cluster.svc.cluster, 'index');
  }

  /** The figures a node publishes in its member card ({} while it has none). */
  async stats(id: string): Promise<Record<string, unknown>> {
    const card = (await this.cards()).find((c) => c.ok && c.card.id === id);
    return card?.ok ? card.card.stats : {};
  }

  /**
   * Steady: exactly the running nodes are active members, every one built its ring from that
   * set, and their owned pks add up to the universe. Resolves to how long it took.
   */
  async waitSteady(timeoutMs: number, ids = this.running()): Promise<number> {
    const started = Date.now();
    const want = new Set(ids);
    for (;;) {
      try {
        const cards = await this.cards();
        const active = activeMembers(cards);
        const view = viewHash(active);
        const ok = cards.filter((c) => c.ok);
        const owned = ok.reduce((sum, c) => sum + (c.ok ? Number(c.card.stats.owned ?? 0) : 0), 0);
        if (
          active.length === want.size &&
          active.every((m) => want.has(m.id)) &&
          ok.every((c) => c.ok && c.card.view === view) &&
          owned === this.opts.pks
        ) {
          return Date.now() - started;
        }
      } catch {
        /* Redis restarting: look again */
      }
      if (Date.now() - started > timeoutMs)
        throw new Error(`cluster not steady with ${[...want].join(', ')} after ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  /**
   * Whether a node is behind with its writes: more samples buffered than half an interval's worth
   * of its pks (a running node always holds those of the last flush age, a small share of that).
   */
  async writeBacklog(): Promise<boolean> {
    const cards = await this.cards();
    return cards.some(
      (c) => c.ok && Number(c.card.stats.writeQueue ?? 0) > Math.max(50, Number(c.card.stats.owned ?? 0) / 2),
    );
  }

  /** Which node owns each pk on the ring of the active members now (as the nodes compute it). */
  async owners(): Promise<Map<number, string>> {
    const ring = new Ring(activeMembers(await this.cards()));
    const out = new Map<number, string>();
    for (const id of ring.ids) for (const pk of ownedBy(this.universe, ring, id).pks) out.set(pk, id);
    return out;
  }

  setMockFaults(faults: MockFaults): void {
    this.cluster.mock.setFaults(faults);
  }

  /** Stops the mock (every connection dropped) and, after `downMs`, starts it again on its port. */
  async restartMock(downMs: number): Promise<void> {
    const old = this.cluster.mock;
    const options = old.options();
    await old.close();
    await sleep(downMs);
    this.cluster.mock = await startMock({ ...options, port: old.port });
  }

  /** Stops every running node gracefully; resolves to their exit codes by id. */
  async stopAll(): Promise<Record<string, number | null>> {
    const ids = this.running();
    const codes = await Promise.all(ids.map((id) => this.stop(id)));
    return Object.fromEntries(ids.map((id, i) => [id, codes[i]]));
  }

  private mustGet(id: string): NodeProcess {
    const p = this.process(id);
    if (!p) throw new Error(`node ${id} is not running`);
    return p;
  }
}

/** The cluster every chaos suite file runs; CHAOS_* variables change it for experiments. */
export function suiteOptions(nodes: string[]): ChaosOptions {
  const num = (name: string, def: number): number => Number(process.env[name] ?? def);
  return {
    pks: num('CHAOS_PKS', 600),
    intervalMs: num('CHAOS_INTERVAL_MS', 2000),
    ttlMs: num('CHAOS_TTL_MS', 1000),
    nodes,
  };
}
