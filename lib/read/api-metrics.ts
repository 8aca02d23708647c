// What `serve` shows Prometheus at /metrics: requests and their latency by route and status (503s
// included), the requests running and waiting, whether Redis and MongoDB are reachable.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ApiProbe {
  running: number;
  waiting: number;
  redisUp: boolean;
  mongoUp: boolean;
}

/** serve's own Prometheus registry, fed once per answered request. */
export class ApiMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'route' | 'status'>;
  private readonly seconds: Histogram<'route'>;

  constructor(probe: () => ApiProbe, info: { cluster: string; version: string }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    new Gauge({
      name: 'influencer_api_info',
      help: "Constant 1, labelled with the serve process's cluster and version",
      labelNames: ['cluster', 'version'],
      registers,
    }).set(info, 1);
    this.requests = new Counter({
      name: 'influencer_api_requests_total',
      help: 'Answered requests by route (as the OpenAPI document names it, or asset, health, none) and status',
      labelNames: ['route', 'status'],
      registers,
    });
    this.seconds = new Histogram({
      name: 'influencer_api_request_duration_seconds',
      help: 'Time from request to answer, by route',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    const gauge = (name: string, help: string, read: (p: ApiProbe) => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read(probe()));
        },
      });
    };
    gauge('influencer_api_requests_running', 'API requests being answered now', (p) => p.running);
    gauge('influencer_api_requests_waiting', 'API requests waiting for a turn (past the bound: 503)', (p) => p.waiting);
    gauge('influencer_api_redis_up', '1 while the Redis connection is ready, else 0', (p) => Number(p.redisUp));
    gauge('influencer_api_mongo_up', '1 while the MongoDB driver reaches a server, else 0', (p) => Number(p.mongoUp));
  }

  observe(route: string, status: number, seconds: number): void {
    this.requests.inc({ route, status: String(status) });
    this.seconds.observe({ route }, seconds);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
