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

/** Redis and MongoDB, connected. */
interface Connections {
  redis: RedisClient;
  sub: RedisClient;
  db: Db;
}

/** What the storage step hands to polling and the daily check. */
interface Storage {
  db: Db;
  layout: StorageLayout;
  totals: Totals;
}

/**
 * One peer of the cluster: membership in Redis, its share of the pk universe from the ring,
 * the poller and the writer. `stop()` leaves in order: state leaving (peers take over its pks),
 * stop polling once they have, finish requests in flight, flush every sample, delete its key.
 */
export class InfluencerNode {
  private redis?: RedisClient;
  private sub?: RedisClient;
  private mongo?: MongoClient;
  private membership?: Membership;
  private tracker?: OwnershipTracker;
  private scheduler?: Scheduler;
  private writer?: SampleWriter;
  private source?: MockstagramClient;
  private rebuilder?: TotalsRebuilder;
  private closer?: PeriodCloser;
  private retention?: RetentionJob;
  private ranking?: RankingJob;
  private suspicious?: SuspiciousChecker;
  private metrics?: NodeMetrics;
  private mongoReachable: () => boolean = () => false;
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
  }

  /** Connects (retrying while Redis or Mongo is down), joins the cluster and starts polling. */
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
    this.notifier.startWatchdog(() => this.healthy());
    await this.serveMetrics();
    this.notifier.status('connecting to Redis and MongoDB');
    const conn = await this.connect();
    if (!conn) return;
    const storage = await this.startStorage(conn);
    if (!storage) return;
    const universe = this.hashUniverse();
    const scheduler = this.startPolling(storage);
    const tracker = this.trackOwnership(universe, scheduler);
    await this.join(conn, tracker, scheduler);
    this.startSuspicious(storage, tracker);
  }

  /** /metrics, /healthz and /readyz from the start, so /readyz says why not while servers are awaited. */
  private async serveMetrics(): Promise<void> {
    const c = this.config;
    if (c.metricsPort <= 0) return;
    const labels = { node: c.nodeId, cluster: c.cluster, version: VERSION };
    this.metrics = new NodeMetrics(() => this.probe(), labels, this.log);
    const url = await this.metrics.listen(c.metricsHost, c.metricsPort);
    this.log.info({ url }, 'serving /metrics, /healthz, /readyz');
  }

  /** Redis (a client and a subscriber) and MongoDB, retried while down; undefined if stopped meanwhile. */
  private async connect(): Promise<Connections | undefined> {
    const c = this.config;
    // one state log for both connections: an outage is one line, not one per connection
    const redisState = new StateLog(this.log, 'redis');
    const target = redisTarget(c);
    const redis = createRedis(target, this.log, `${c.cluster}:${c.nodeId}`, {}, redisState);
    const sub = createRedis(target, this.log, `${c.cluster}:${c.nodeId}:sub`, {}, redisState);
    this.redis = redis;
    this.sub = sub;
    this.mongo = createMongo(c.mongoUrl);
    this.mongoReachable = watchReachable(this.mongo);
    const signal = this.abort.signal;
    const [db] = await Promise.all([
      connectMongo(this.mongo, c.mongoUrl, c.mongoDb, this.log, signal),
      // one after the other, so a Redis outage at start is reported once
      connectRedis(redis, target, this.log, signal).then(() => connectRedis(sub, target, this.log, signal)),
    ]);
    return signal.aborted ? undefined : { redis, sub, db };
  }

  /**
   * The storage's jobs: the totals rebuilt if Redis lost them (on a new cluster, started at 0 before
   * its first sample is logged), periods closed, retention; undefined if stopped meanwhile.
   */
  private async startStorage({ redis, db }: Connections): Promise<Storage | undefined> {
    const c = this.config;
    const now = this.now;
    if (c.clockSkewMs !== 0) {
      this.log.warn({ clockSkewMs: c.clockSkewMs }, 'clock skewed by CLOCK_SKEW_MS (a test hook)');
    }
    const layout = await loadLayout(db, c, now(), { recordInterval: true });
    const keyspace = new Keyspace(redis, c.cluster, this.log);
    const totals = new Totals(redis, c.cluster, layout.slices, undefined, keyspace);
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
    this.rebuilder = new TotalsRebuilder(deps, { graceMs, now });
    this.rebuilder.start();
    if ((await keyspace.check()) === 'current') await this.rebuilder.counting(this.abort.signal);
    else
      this.log.warn(
        'nodes of the previous version run this cluster: this one logs its samples and leaves them to their period close until the last of them has gone',
      );
    if (this.abort.signal.aborted) return undefined;
    this.closer = new PeriodCloser(deps, { graceMs, now });
    this.closer.start();
    this.retention = new RetentionJob(deps, { settings: c, now });
    this.retention.start();
    // a snapshot of an interval is taken once its samples are stored: the flush age and a second after its end
    const rankingLag = c.flushMaxAgeMs + 1000;
    const rankingOpts = {
      cluster: c.cluster,
      slices: layout.slices,
      intervalMs: c.intervalMs,
      lagMs: rankingLag,
      keyspace,
      now,
    };
    this.ranking = new RankingJob(redis, rankingOpts, this.log);
    this.ranking.start();
    if (this.metrics) this.metrics.storageProbe = () => probeStorage(redis, c.cluster, layout, now());
    return { db, layout, totals };
  }

  private hashUniverse(): PkUniverse {
    const t0 = performance.now();
    const universe = new PkUniverse(this.config.pkMin, this.config.pkMax);
    this.log.info({ pks: universe.size, ms: Math.round(performance.now() - t0) }, 'pk universe hashed');
    return universe;
  }

  /** The poller and the writer behind it; the scheduler is started once the node joins. */
  private startPolling({ db, layout, totals }: Storage): Scheduler {
    const c = this.config;
    const now = this.now;
    const writer = new SampleWriter(new LogWriter(db, totals, layout, c.nodeId), { ...c, now }, this.log);
    this.writer = writer;
    const source = new MockstagramClient(c.mockstagramUrl, {
      connections: c.concurrency,
      timeoutMs: c.requestTimeoutMs,
      now,
      log: this.log,
    });
    this.source = source;
    const scheduler = new Scheduler(source, (s) => writer.add(s), {
      intervalMs: c.intervalMs,
      concurrency: c.concurrency,
      stored: storedIn(totals),
      // a handed-over pk's last sample is in the store within the flush age and the ring's lag (≤ 2 s)
      settleMs: c.flushMaxAgeMs + 2000,
      now,
    });
    this.scheduler = scheduler;
    writer.on('batch', (b) => scheduler.recordStored(b.stored, b.doneAt));
    const metrics = this.metrics;
    if (metrics) writer.on('batch', (b) => metrics.observeBatch(b));
    return scheduler;
  }

  /** This node's share of the pks, recomputed when the members change, handed to the scheduler. */
  private trackOwnership(universe: PkUniverse, scheduler: Scheduler): OwnershipTracker {
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
    tracker.on('ring', (ring: Ring) => this.membership?.setView(ring.members));
    tracker.on('error', (err: Error) => this.log.error({ err: err.message }, 'ownership recompute failed'));
    return tracker;
  }

  /** Claims this node's card and becomes active; from then on the members' changes reach the tracker. */
  private async join({ redis, sub }: Connections, tracker: OwnershipTracker, scheduler: Scheduler): Promise<void> {
    const c = this.config;
    const card = { cluster: c.cluster, id: c.nodeId, weight: c.nodeWeight, ttlMs: c.heartbeatTtlMs };
    this.membership = new Membership(redis, sub, { ...card, stats: () => this.stats(), now: this.now }, this.log);
    this.membership.on('members', (members) => {
      if (!this.leaving) tracker.setMembers(members);
    });
    scheduler.start();
    await this.membership.start();
    await this.onRing(tracker);
    const owned = tracker.owned().pks.length;
    this.log.info({ node: c.nodeId, owned }, 'node active');
    if (!this.leaving) this.notifier.ready(`active: owns ${owned} pks, ${tracker.ring().members.length} members`);
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
  private startSuspicious({ db, totals }: Storage, tracker: OwnershipTracker): void {
    const c = this.config;
    if (c.suspiciousIntervalMs <= 0 || this.leaving) return;
    this.suspicious = new SuspiciousChecker(
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
    this.suspicious.start();
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
    return {
      scheduler: this.scheduler?.stats(),
      writer: w && { ...w.counters, length: w.length, pendingApply: w.pendingApply, failing: w.failing },
      owned: this.tracker?.owned().pks.length ?? 0,
      state: this.leaving ? 'leaving' : this.membership?.currentState,
      ringMembers: this.membership?.ringMembers.length ?? 0,
      redisUp: this.redis?.status === 'ready' && this.sub?.status === 'ready',
      mongoUp: this.mongoReachable(),
    };
  }

  /** Graceful stop; idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.leave();
    return this.stopping;
  }

  private async leave(): Promise<void> {
    this.leaving = true;
    this.abort.abort();
    this.notifier.stopping();
    await this.suspicious?.stop();
    const ttl = this.config.heartbeatTtlMs;
    if (this.membership) {
      try {
        await this.membership.setState('leaving');
        const handed = await this.membership.awaitHandover(ttl + 2000);
        if (!handed) this.log.warn('peers did not confirm the handover in time; stopping anyway');
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not announce leaving');
      }
    }
    await this.scheduler?.stop();
    await this.rebuilder?.stop();
    await this.closer?.stop();
    await this.retention?.stop();
    await this.ranking?.stop();
    this.tracker?.close();
    if (this.writer) {
      const flushed = await this.writer.flushAll(Math.max(30_000, 3 * this.config.intervalMs));
      const why = 'MongoDB did not take every buffered sample before the stop deadline';
      if (!flushed) this.log.error({ unwritten: this.writer.length }, why);
      this.writer.close();
    }
    await this.membership?.close();
    await this.source?.close();
    await this.mongo?.close().catch(() => undefined);
    this.sub?.disconnect();
    await this.redis?.quit().catch(() => this.redis?.disconnect());
    this.log.info({ ...this.stats() }, 'node stopped');
    await this.metrics?.close();
    this.notifier.close();
  }
}
