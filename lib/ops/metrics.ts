import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MEMBER_STATES, type MemberState } from '../cluster/card.js';
import type { Logger } from '../shared/log.js';
import type { StoredBatch, WriterCounters } from '../storage/write/sample-writer.js';
import type { SchedulerStats } from '../polling/scheduler.js';
import type { FetchErrorKind } from '../polling/source.js';
import type { StorageProbe } from './storage-probe.js';
import type { TotalsState } from '../storage/state/totals-state.js';

/** What a node shows at scrape time; the parts built by `start()` are missing until then. */
export interface NodeProbe {
  scheduler?: SchedulerStats;
  writer?: WriterCounters & { length: number; pendingApply: number; failing: boolean };
  owned: number;
  /** membership state; undefined before the node has tried to join */
  state?: MemberState;
  ringMembers: number;
  redisUp: boolean;
  mongoUp: boolean;
}

export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/** Ready = joined (member state active), MongoDB reachable, and the last write did not fail. */
export function readiness(p: NodeProbe): Readiness {
  const reasons: string[] = [];
  if (p.state !== 'active') reasons.push(p.state ? `member state ${p.state}` : 'not joined yet');
  if (!p.mongoUp) reasons.push('MongoDB unreachable');
  if (p.writer?.failing) reasons.push('the last write failed');
  return { ready: reasons.length === 0, reasons };
}

// a Record, so the compiler tells when a kind is added to FetchErrorKind and not here
const FETCH_ERROR_KINDS = Object.keys({
  timeout: 1,
  connect: 1,
  http_5xx: 1,
  http_429: 1,
  http_other: 1,
  malformed_json: 1,
  invalid_payload: 1,
} satisfies Record<FetchErrorKind, 1>) as FetchErrorKind[];

export interface MetricsInfo {
  node: string;
  cluster: string;
  version: string;
}

/**
 * One node's Prometheus registry (its own, not prom-client's global one, so several nodes can
 * share a process) and its HTTP server: `/metrics`, `/healthz`, `/readyz`. Counters and gauges
 * are read from the node's own figures when scraped; only the two histograms are fed, once per
 * written batch, off the fetch path.
 */
const TOTALS_STATES: readonly TotalsState[] = ['ready', 'rebuilding', 'missing'];

export class NodeMetrics {
  readonly registry = new Registry();
  private snapshot: NodeProbe;
  private storage: StorageProbe = {};
  /** set by the node once its storage is up: read at scrape time, bounded in time */
  storageProbe?: () => Promise<StorageProbe>;
  private server?: Server;
  private closing?: Promise<void>;
  private readonly lateness: Histogram;
  private readonly batchSeconds: Histogram;

  constructor(
    private readonly probe: () => NodeProbe,
    info: MetricsInfo,
    private readonly log: Logger,
  ) {
    this.snapshot = probe();
    const registers = [this.registry];
    const snap = (): NodeProbe => this.snapshot;
    collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'influencer_node_info',
      help: "Constant 1, labelled with this node's id, cluster and version",
      labelNames: ['node', 'cluster', 'version'],
      registers,
    }).set({ node: info.node, cluster: info.cluster, version: info.version }, 1);

    const counter = (name: string, help: string, read: (p: NodeProbe) => number): void => {
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read(snap()));
        },
      });
    };
    const gauge = (name: string, help: string, read: (p: NodeProbe) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(snap()));
        },
      });
    };
    counter(
      'influencer_samples_stored_total',
      'Samples made durable in the log (MongoDB)',
      (p) => p.writer?.stored ?? 0,
    );
    counter(
      'influencer_missed_intervals_total',
      'Owned pk-intervals that got no sample',
      (p) => p.scheduler?.missed ?? 0,
    );
    counter(
      'influencer_not_found_total',
      'Fetches answered "InfluencerNotFoundError" (the pk is asked again an hour later)',
      (p) => p.scheduler?.notFound ?? 0,
    );
    counter('influencer_write_batches_total', 'Batches written to MongoDB', (p) => p.writer?.batches ?? 0);
    counter(
      'influencer_write_failures_total',
      'Batch writes that failed and were retried',
      (p) => p.writer?.failedFlushes ?? 0,
    );
    counter(
      'influencer_duplicates_total',
      'Samples dropped as repeats of a stored (pk, interval)',
      (p) => p.writer?.duplicates ?? 0,
    );
    counter(
      'influencer_dropped_samples_total',
      'Samples dropped because the write buffer was full',
      (p) => p.writer?.dropped ?? 0,
    );
    counter(
      'influencer_late_samples_total',
      'Logged samples that reached Redis after their period had closed (in the log only)',
      (p) => p.writer?.late ?? 0,
    );
    counter(
      'influencer_deferred_samples_total',
      "Logged samples left to their period's reconcile (Redis down too long)",
      (p) => p.writer?.deferred ?? 0,
    );
    gauge(
      'influencer_apply_queue_samples',
      'Logged samples waiting for the Redis step',
      (p) => p.writer?.pendingApply ?? 0,
    );
    new Counter({
      name: 'influencer_fetch_errors_total',
      help: 'Failed Mockstagram requests (each attempt), by kind',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const errors = snap().scheduler?.fetchErrors ?? {};
        for (const kind of FETCH_ERROR_KINDS) this.inc({ kind }, errors[kind] ?? 0);
      },
    });
    gauge('influencer_write_buffer_samples', 'Samples waiting to be written to MongoDB', (p) => p.writer?.length ?? 0);
    gauge('influencer_owned_pks', 'Pks this node owns on the ring', (p) => p.owned);
    gauge('influencer_ring_members', "Active members on this node's ring", (p) => p.ringMembers);
    gauge('influencer_requests_in_flight', 'Mockstagram requests in flight', (p) => p.scheduler?.inFlight ?? 0);
    gauge('influencer_redis_up', '1 while both Redis connections are ready, else 0', (p) => Number(p.redisUp));
    gauge('influencer_mongo_up', '1 while the MongoDB driver reaches a server, else 0', (p) => Number(p.mongoUp));
    gauge('influencer_ready', '1 while /readyz answers 200, else 0', (p) => Number(readiness(p).ready));
    new Gauge({
      name: 'influencer_member_state',
      help: "1 for this node's membership state (joining, active, leaving), 0 for the others",
      labelNames: ['state'],
      registers,
      collect() {
        for (const state of MEMBER_STATES) this.set({ state }, Number(snap().state === state));
      },
    });

    // the last complete interval's share on time, as counts so a cluster's share is sum(on time) / sum(due)
    const last = (p: NodeProbe): { due: number; onTime: number } => {
      const s = p.scheduler;
      if (!s || s.onTimePct === null) return { due: 0, onTime: 0 };
      const due = s.samplesLastInterval + s.missedLastInterval;
      return { due, onTime: Math.round((s.onTimePct / 100) * due) };
    };
    gauge(
      'influencer_last_interval_due_pks',
      'Owned pks due in the last complete interval (stored or missed)',
      (p) => last(p).due,
    );
    gauge(
      'influencer_last_interval_on_time_pks',
      'Of those, the pks stored before they were due again',
      (p) => last(p).onTime,
    );
    const storage = (): StorageProbe => this.storage;
    new Gauge({
      name: 'influencer_totals_state',
      help: 'Running totals in Redis: 1 for the current of ready / rebuilding / missing (none while Redis does not answer)',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const state = storage().totals;
        if (state) for (const s of TOTALS_STATES) this.set({ state: s }, Number(state === s));
      },
    });
    new Gauge({
      name: 'influencer_period_close_lag_seconds',
      help: 'Seconds since the end of the oldest period not closed yet (0: all ended periods closed; NaN: unknown)',
      registers,
      collect() {
        this.set(storage().closeLagS ?? NaN);
      },
    });

    new Gauge({
      name: 'influencer_log_documents_quarantined',
      help: "Log documents no node can apply, set aside and kept in MongoDB's quarantine (the cluster's; NaN: unknown)",
      registers,
      collect() {
        this.set(storage().quarantined ?? NaN);
      },
    });

    this.lateness = new Histogram({
      name: 'influencer_sample_lateness_seconds',
      help: "Time from a sample's due time to its storage (done - due)",
      registers,
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60, 120, 300],
    });
    this.batchSeconds = new Histogram({
      name: 'influencer_write_batch_duration_seconds',
      help: 'Duration of one successful batch write (MongoDB and Redis totals)',
      registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
  }

  /** Called by the node for every written batch (about 0.25 µs per stored sample). */
  observeBatch(b: StoredBatch): void {
    this.batchSeconds.observe(b.ms / 1000);
    for (const s of b.stored) this.lateness.observe(Math.max(0, b.doneAt - (s.due ?? s.at)) / 1000);
  }

  /** The Prometheus text of the node's figures now. */
  async metrics(): Promise<string> {
    this.snapshot = this.probe();
    this.storage = (await this.storageProbe?.()) ?? {};
    return this.registry.metrics();
  }

  /** Starts the HTTP server; rejects when the address cannot be bound (port in use, ...). */
  async listen(host: string, port: number): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 65_000;
    await new Promise<void>((resolve, reject) => {
      const where = `${host}:${port} (METRICS_HOST, METRICS_PORT)`;
      const fail = (err: Error): void => reject(new Error(`cannot serve metrics on ${where}: ${err.message}`));
      server.once('error', fail);
      server.listen(port, host, () => {
        server.off('error', fail);
        resolve();
      });
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'metrics server error'));
    this.server = server;
    const address = server.address();
    const bound = typeof address === 'object' && address ? address.port : port;
    return `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  }

  /** Stops the server and drops its connections; idempotent. */
  stop(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const server = this.server;
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return this.closing;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8'): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(405, 'method not allowed\n');
    }
    try {
      switch (path) {
        case '/metrics':
          return send(200, await this.metrics(), this.registry.contentType);
        case '/healthz':
          return send(200, 'ok\n');
        case '/readyz': {
          const r = readiness(this.probe());
          return r.ready ? send(200, 'ready\n') : send(503, `not ready: ${r.reasons.join('; ')}\n`);
        }
        default:
          return send(404, 'not found: try /metrics, /healthz or /readyz\n');
      }
    } catch (err) {
      // the cause goes to the log, not to whoever scrapes
      this.log.error({ err: (err as Error).message, path }, 'metrics request failed');
      send(500, 'internal error: see the node log\n');
    }
  }
}
