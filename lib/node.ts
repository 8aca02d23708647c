import type { RedisClient } from './shared/redis.js';
import type { Db, MongoClient } from 'mongodb';
import type { Config } from './ops/config.js';
import { maskUrl } from './shared/mask-url.js';
import { StateLog, type Logger } from './shared/log.js';
import { Membership } from './cluster/membership.js';
import { connectMongo, createMongo, watchReachable } from './shared/mongo.js';
import { NodeMetrics, type NodeProbe } from './ops/metrics.js';
import { OwnershipTracker, type OwnershipChange } from './ring/ownership.js';
import { PkUniverse } from './ring/pk-universe.js';
import { connectRedis, createRedis, describeTarget, redisTarget } from './shared/redis.js';
import { SampleWriter } from './storage/write/sample-writer.js';
import { Scheduler } from './polling/scheduler.js';
import { MockstagramClient } from './polling/source.js';
import { collections } from './storage/format/documents.js';
import { closeGraceMs, PeriodCloser } from './storage/jobs/closer.js';
import { loadLayout, type StorageLayout } from './storage/format/layout.js';
import type { StorageJobDeps } from './storage/jobs/job-deps.js';
import { LogWriter } from './storage/write/log-writer.js';
import { TotalsRebuilder } from './storage/jobs/rebuild.js';
import { RetentionJob } from './storage/jobs/retention.js';
import { RankingJob } from './storage/state/ranking.js';
import { Keyspace } from './storage/state/keyspace.js';
import { storedIn } from './polling/stored.js';
import { SuspiciousChecker } from './polling/suspicious.js';
import { Totals } from './storage/state/totals.js';
import { ClusterLock } from './cluster/locks.js';
import type { Ring } from './ring/ring.js';
import { VERSION } from './shared/version.js';
import { ServiceNotifier } from './ops/notify.js';
import { probeStorage } from './ops/storage-probe.js';
import { ServiceStack, StackStopped, type Service } from './shared/services.js';

/**
 * Redis (a client and a subscriber) and MongoDB: connected on start, retried while down (start
 * resolves without them once `signal` aborts); closed on stop.
 */
class Connections implements Service {
  readonly redis: RedisClient;
  readonly sub: RedisClient;
  readonly mongo: MongoClient;
  /** whether MongoDB's topology has a reachable server */
  readonly mongoReachable: () => boolean;
  private database?: Db;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {
    const c = config;
    // one state log for both connections: an outage is one line, not one per connection
    const redisState = new StateLog(log, 'redis');
    const target = redisTarget(c);
    this.redis = createRedis(target, log, `${c.cluster}:${c.nodeId}`, {}, redisState);
    this.sub = createRedis(target, log, `${c.cluster}:${c.nodeId}:sub`, {}, redisState);
    this.mongo = createMongo(c.mongoUrl);
    this.mongoReachable = watchReachable(this.mongo);
  }

  /** The database, once connected. */
  get db(): Db {
    if (!this.database) throw new Error('MongoDB is not connected');
    return this.database;
  }

  async start(): Promise<void> {
    const { config: c, log, signal } = this;
    const target = redisTarget(c);
    try {
      const [db] = await Promise.all([
        connectMongo(this.mongo, c.mongoUrl, c.mongoDb, log, signal),
        // one after the other, so a Redis outage at start is reported once
        connectRedis(this.redis, target, log, signal).then(() => connectRedis(this.sub, target, log, signal)),
      ]);
      if (!signal.aborted) this.database = db;
    } catch (err) {
      // a stop closes the clients while they connect: what they throw then is the stop, not a failure
      if (!signal.aborted) throw err;
    }
  }

  async stop(): Promise<void> {
    await this.mongo.close().catch(() => undefined);
    this.sub.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

/** What the storage step hands to polling and the daily check. */
interface Storage {
  db: Db;
  layout: StorageLayout;
  totals: Totals;
  keyspace: Keyspace;
}

/**
 * One peer of the cluster: membership in Redis, its share of the pk universe from the ring, the
 * poller and the writer. Its parts are services (`lib/shared/services.ts`) started in the order of
 * `start()` and stopped in reverse, so a stop leaves in order: the daily check ends, the node says
 * it is leaving and waits until its peers have taken its pks over, polling stops (requests in flight
 * finish), the storage jobs stop, every buffered sample is logged, its member card is deleted, and
 * the connections close.
 */
export class InfluencerNode {
  private readonly stack: ServiceStack;
  private conn?: Connections;
  private membership?: Membership;
  private tracker?: OwnershipTracker;
  private scheduler?: Scheduler;
  private writer?: SampleWriter;
  private suspicious?: SuspiciousChecker;
  private metrics?: NodeMetrics;
  private leaving = false;
  private stopping?: Promise<void>;
  private readonly abort = new AbortController();
  /** systemd's Type=notify: READY=1 once active, STOPPING=1 on leave, WATCHDOG=1 while healthy */
  private readonly notifier: ServiceNotifier;

  /** The clock that schedules and stamps samples: Date.now(), unless the test hook skews it. */
  private readonly now: () => number;

  constructor(
    private readonly config: Config,
    private readonly log: Logger,
  ) {
    const skew = config.clockSkewMs;
    this.now = skew === 0 ? Date.now : () => Date.now() + skew;
    this.notifier = new ServiceNotifier(log);
    this.stack = new ServiceStack(log);
  }

  /** The names of the services started and stopped so far, each in its order. */
  get services(): { started: string[]; stopped: string[] } {
    return this.stack.history;
  }

  /**
   * Connects (retrying while Redis or Mongo is down), joins the cluster and starts polling, one
   * service after another; resolves early if stopped meanwhile.
   */
  async start(): Promise<void> {
    const c = this.config;
    this.log.info(
      {
        node: c.nodeId,
        cluster: c.cluster,
        redis: describeTarget(redisTarget(c)),
        mongo: maskUrl(c.mongoUrl),
        mockstagram: maskUrl(c.mockstagramUrl),
        intervalMs: c.intervalMs,
        pks: `${c.pkMin}..${c.pkMax}`,
      },
      'node starting',
    );
    try {
      await this.startServices();
    } catch (err) {
      // once stopping, what the start meets (a closed client, a stopped stack) is the stop, not a failure
      if (!(err instanceof StackStopped) && !this.leaving) throw err;
    }
  }

  private async startServices(): Promise<void> {
    const c = this.config;
    const s = this.stack;
    await s.start('watchdog', this.watchdog());
    if (c.metricsPort > 0) this.metrics = await s.start('metrics', this.metricsServer());
    this.notifier.status('connecting to Redis and MongoDB');
    const conn = await s.start('connections', (this.conn = new Connections(c, this.log, this.abort.signal)));
    const storage = await this.openStorage(conn);
    // the card says joining (off the ring) until the node is ready to poll; it is deleted once every sample is logged
    const membership = await s.start('membership', this.newMembership(conn));
    const writer = await s.start('writer', this.newWriter(storage));
    await this.startStorageJobs(conn, storage);
    const source = await s.start('source', this.newSource());
    const scheduler = await s.start('polling', this.newScheduler(source, writer, storage));
    const tracker = await s.start('ownership', this.newTracker(this.hashUniverse(), scheduler, membership));
    await s.start('ring', { start: () => this.join(membership, tracker), stop: () => this.handOver(membership) });
    if (c.suspiciousIntervalMs > 0) this.suspicious = await s.start('suspicious', this.newSuspicious(storage, tracker));
  }

  /** WATCHDOG=1 to systemd while healthy, from the start. */
  private watchdog(): Service {
    return {
      start: () => this.notifier.startWatchdog(() => this.healthy()),
      stop: () => this.notifier.stopWatchdog(),
    };
  }

  /** /metrics, /healthz and /readyz from the start, so /readyz says why not while servers are awaited. */
  private metricsServer(): NodeMetrics & Service {
    const c = this.config;
    const labels = { node: c.nodeId, cluster: c.cluster, version: VERSION };
    const metrics = new NodeMetrics(() => this.probe(), labels, this.log);
    return Object.assign(metrics, {
      start: async () => {
        const url = await metrics.listen(c.metricsHost, c.metricsPort);
        this.log.info({ url }, 'serving /metrics, /healthz, /readyz');
      },
    });
  }

  /** This process's member card: claimed (joining) and heartbeated; active once the node joins the ring. */
  private newMembership({ redis, sub }: Connections): Membership {
    const c = this.config;
    const card = { cluster: c.cluster, id: c.nodeId, weight: c.nodeWeight, ttlMs: c.heartbeatTtlMs };
    return (this.membership = new Membership(
      redis,
      sub,
      { ...card, stats: () => this.stats(), now: this.now },
      this.log,
    ));
  }

  /** The layout stored in MongoDB and the running totals in Redis. */
  private async openStorage({ redis, db }: Connections): Promise<Storage> {
    const c = this.config;
    if (c.clockSkewMs !== 0) {
      this.log.warn({ clockSkewMs: c.clockSkewMs }, 'clock skewed by CLOCK_SKEW_MS (a test hook)');
    }
    const layout = await loadLayout(db, c, this.now(), { recordInterval: true });
    const keyspace = new Keyspace(redis, c.cluster, this.log);
    const totals = new Totals(redis, c.cluster, layout.slices, undefined, keyspace);
    return { db, layout, totals, keyspace };
  }

  /** Samples batched into the log and applied to the running totals; on stop, everything buffered is logged. */
  private newWriter({ db, layout, totals }: Storage): SampleWriter {
    const c = this.config;
    const stopDeadlineMs = Math.max(30_000, 3 * c.intervalMs);
    const log = new LogWriter(db, totals, layout, c.nodeId);
    return (this.writer = new SampleWriter(log, { ...c, now: this.now, stopDeadlineMs }, this.log));
  }

  /**
   * The storage's jobs: the totals rebuilt if Redis lost them (on a new cluster, started at 0 before
   * its first sample is logged), periods closed, retention, ranking snapshots.
   */
  private async startStorageJobs({ redis, db }: Connections, { layout, totals, keyspace }: Storage): Promise<void> {
    const c = this.config;
    const s = this.stack;
    const now = this.now;
    const lock = new ClusterLock(redis, c.cluster, this.log);
    const deps: StorageJobDeps & { totals: Totals } = {
      redis,
      db,
      lock,
      layout,
      cluster: c.cluster,
      log: this.log,
      totals,
      keyspace,
    };
    // every sample of a time before T is in the log T + grace later: flush age, fetch deadlines, a margin
    const graceMs = closeGraceMs(c);
    const rebuilder = await s.start('rebuild', new TotalsRebuilder(deps, { graceMs, now }));
    if ((await keyspace.check()) === 'current') await rebuilder.counting(this.abort.signal);
    else
      this.log.warn(
        'nodes of the previous version run this cluster: this one logs its samples and leaves them to their period close until the last of them has gone',
      );
    await s.start('closer', new PeriodCloser(deps, { graceMs, now }));
    await s.start('retention', new RetentionJob(deps, { settings: c, now }));
    // a snapshot of an interval is taken once its samples are stored: the flush age and a second after its end
    const lagMs = c.flushMaxAgeMs + 1000;
    const ranking = { cluster: c.cluster, slices: layout.slices, intervalMs: c.intervalMs, lagMs, keyspace, now };
    await s.start('ranking', new RankingJob(redis, ranking, this.log));
    if (this.metrics) this.metrics.storageProbe = () => probeStorage(redis, c.cluster, layout, now());
  }

  private hashUniverse(): PkUniverse {
    const t0 = performance.now();
    const universe = new PkUniverse(this.config.pkMin, this.config.pkMax);
    this.log.info({ pks: universe.size, ms: Math.round(performance.now() - t0) }, 'pk universe hashed');
    return universe;
  }

  /** The Mockstagram client of polling. */
  private newSource(): MockstagramClient {
    const c = this.config;
    const opts = { connections: c.concurrency, timeoutMs: c.requestTimeoutMs, now: this.now, log: this.log };
    return new MockstagramClient(c.mockstagramUrl, opts);
  }

  /** The poller, feeding the writer; it learns from the writer's batches what was stored on time. */
  private newScheduler(source: MockstagramClient, writer: SampleWriter, { totals }: Storage): Scheduler {
    const c = this.config;
    const scheduler = new Scheduler(source, (s) => writer.add(s), {
      intervalMs: c.intervalMs,
      concurrency: c.concurrency,
      stored: storedIn(totals),
      // a handed-over pk's last sample is in the store within the flush age and the ring's lag (≤ 2 s)
      settleMs: c.flushMaxAgeMs + 2000,
      now: this.now,
      log: this.log,
    });
    this.scheduler = scheduler;
    writer.on('batch', (b) => scheduler.recordStored(b.stored, b.doneAt));
    const metrics = this.metrics;
    if (metrics) writer.on('batch', (b) => metrics.observeBatch(b));
    return scheduler;
  }

  /** This node's share of the pks, recomputed when the members change, handed to the scheduler. */
  private newTracker(universe: PkUniverse, scheduler: Scheduler, membership: Membership): OwnershipTracker {
    const tracker = new OwnershipTracker(universe, this.config.nodeId, { now: this.now });
    this.tracker = tracker;
    tracker.on('change', (change: OwnershipChange) => {
      scheduler.setOwned(change.owned, change.gained, change.orphaned);
      this.log.info(
        {
          owned: change.owned.pks.length,
          gained: change.gained.length,
          orphaned: change.orphaned.length,
          lost: change.lost.length,
          members: change.members.length,
          ms: Math.round(change.ms),
        },
        'ownership changed',
      );
    });
    tracker.on('ring', (ring: Ring) => membership.setView(ring.members));
    tracker.on('error', (err: Error) => this.log.error({ err: err.message }, 'ownership recompute failed'));
    membership.on('members', (members) => {
      if (!this.leaving) tracker.setMembers(members);
    });
    return tracker;
  }

  /** Becomes active: from then on the ring holds this node, and the members' changes reach the tracker. */
  private async join(membership: Membership, tracker: OwnershipTracker): Promise<void> {
    // the ring as it is just before this node joins it: what it gains from live members is handed
    // over (held until their samples are in), not orphaned (fetched at once)
    await membership.rescan();
    if (membership.ringMembers.length > 0) tracker.setMembers(membership.ringMembers);
    await membership.activate();
    await this.onRing(tracker);
    const owned = tracker.owned().pks.length;
    this.log.info({ node: this.config.nodeId, owned }, 'node active');
    if (!this.leaving) this.notifier.ready(`active: owns ${owned} pks, ${tracker.ring().members.length} members`);
  }

  /** Leaving: the card says so, and the node waits (a TTL and 2 s at most) until its peers have taken its pks over. */
  private async handOver(membership: Membership): Promise<void> {
    try {
      await membership.setState('leaving');
      const handed = await membership.awaitHandover(this.config.heartbeatTtlMs + 2000);
      if (!handed) this.log.warn('peers did not confirm the handover in time; stopping anyway');
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not announce leaving');
    }
  }

  /**
   * Resolves once this node's ring holds it (its share computed, handed to the scheduler), on stop,
   * or after 10 s (a full ring leaves it off: it is active all the same, owning nothing).
   */
  private onRing(tracker: OwnershipTracker): Promise<void> {
    const id = this.config.nodeId;
    const onIt = (): boolean => this.leaving || tracker.ring().members.some((m) => m.id === id);
    if (onIt()) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        tracker.off('ring', check);
        this.abort.signal.removeEventListener('abort', done);
        resolve();
      };
      const check = (): void => {
        if (onIt()) done();
      };
      const timer = setTimeout(done, 10_000);
      tracker.on('ring', check);
      this.abort.signal.addEventListener('abort', done);
    });
  }

  /** The health the watchdog reports: the membership heartbeat loop keeps running (Redis calls time out after 10 s). */
  private healthy(): boolean {
    const m = this.membership;
    return !m || m.heartbeatAgeMs < this.config.heartbeatTtlMs + 20_000;
  }

  /** The daily is_suspicious check: low priority, off the polling path (its own client, concurrency and timeout). */
  private newSuspicious({ db, totals }: Storage, tracker: OwnershipTracker): SuspiciousChecker {
    const c = this.config;
    return new SuspiciousChecker(
      {
        mockstagramUrl: c.mockstagramUrl,
        intervalMs: c.suspiciousIntervalMs,
        concurrency: c.suspiciousConcurrency,
        timeoutMs: c.suspiciousTimeoutMs,
        post: c.suspiciousPost,
        now: this.now,
      },
      { owned: () => tracker.owned(), answers: collections(db).answers, totals, log: this.log },
    );
  }

  /** Figures for the member card and `status`. */
  stats(): Record<string, unknown> {
    const s = this.scheduler?.stats();
    const w = this.writer?.counters;
    return {
      ...s,
      owned: this.tracker?.owned().pks.length ?? 0,
      writeQueue: this.writer?.length ?? 0,
      applyQueue: this.writer?.pendingApply ?? 0,
      loggedThrough: this.loggedThrough(),
      stored: w?.stored ?? 0,
      duplicates: w?.duplicates ?? 0,
      late: w?.late ?? 0,
      dropped: w?.dropped ?? 0,
      lastBatchMs: w?.lastBatchMs ?? 0,
      ...(this.suspicious ? { suspicious: this.suspicious.stats() } : {}),
    };
  }

  /**
   * Every sample of an interval before this is in the log: the oldest interval with a fetch still
   * answering or a sample still buffered, else the previous interval (its pks may still be
   * dispatched). Periods close once every live member's card says so.
   */
  private loggedThrough(): number {
    const previous = Math.floor(this.now() / this.config.intervalMs) * this.config.intervalMs - this.config.intervalMs;
    const fetching = this.scheduler?.oldestInFlight() ?? previous;
    return Math.min(this.writer?.oldestUnlogged() ?? previous, fetching, previous);
  }

  /** What /metrics and /readyz read at scrape time. */
  probe(): NodeProbe {
    const w = this.writer;
    const conn = this.conn;
    return {
      scheduler: this.scheduler?.stats(),
      writer: w && { ...w.counters, length: w.length, pendingApply: w.pendingApply, failing: w.failing },
      owned: this.tracker?.owned().pks.length ?? 0,
      state: this.leaving ? 'leaving' : this.membership?.currentState,
      ringMembers: this.membership?.ringMembers.length ?? 0,
      redisUp: conn?.redis.status === 'ready' && conn.sub.status === 'ready',
      mongoUp: conn?.mongoReachable() ?? false,
    };
  }

  /** Graceful stop: every service started, in reverse order (see the class); idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.leave();
    return this.stopping;
  }

  private async leave(): Promise<void> {
    this.leaving = true;
    this.abort.abort();
    this.notifier.stopping();
    await this.stack.stopAll();
    this.log.info({ ...this.stats() }, 'node stopped');
  }
}
