// autocannon 8 as the benchmarks use it (it ships no types), and lists of requests for random pks.
import { createRequire } from 'node:module';

export interface AutocannonRequest {
  method?: string;
  path?: string;
}
export interface AutocannonResult {
  duration: number;
  /** connection errors, timeouts included */
  errors: number;
  timeouts: number;
  non2xx: number;
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
}
/** Runs for `duration` seconds, or until `amount` answers when given. */
export type Autocannon = (opts: {
  url: string;
  connections: number;
  duration: number;
  amount?: number;
  /** requests a second from all connections together, instead of as many as they can */
  overallRate?: number;
  requests?: AutocannonRequest[];
}) => Promise<AutocannonResult>;

export const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

/**
 * n GETs of `path(pk)` for random pks of [pkMin, pkMin + count), each built once: autocannon's
 * per-request setupRequest costs it about half its throughput, which would make the client the bottleneck.
 */
export function randomPkRequests(
  n: number,
  pkMin: number,
  count: number,
  path: (pk: number) => string,
): AutocannonRequest[] {
  return Array.from({ length: n }, () => ({ method: 'GET', path: path(pkMin + Math.floor(Math.random() * count)) }));
}
