import type { Redis } from 'ioredis';
import Redlock, { ExecutionError, ResourceLockedError } from 'redlock';
import type { Logger } from './log.js';

/**
 * Singleton work for the cluster (retention, index creation, rebuilding the rank index): at most
 * one node runs a job at a time. Never used on the per-sample path. The lock is extended while
 * the job runs; if the holder dies, the lock expires after `ttlMs` and another node may take it.
 */
export class ClusterLock {
  private readonly redlock: Redlock;

  constructor(redis: Redis, private readonly cluster: string, private readonly log: Logger, private readonly ttlMs = 10_000) {
    this.redlock = new Redlock([redis], { retryCount: 0, automaticExtensionThreshold: Math.floor(ttlMs / 2) });
    // extension failures surface through the signal given to the job
    this.redlock.on('error', () => undefined);
  }

  key(job: string): string {
    return `${this.cluster}:lock:${job}`;
  }

  /**
   * Runs `job` if no other node holds its lock; resolves to `{ ran: false }` when one does.
   * The job gets an AbortSignal that fires if the lock is lost (it should stop then).
   */
  async runExclusive<T>(job: string, fn: (signal: AbortSignal) => Promise<T>): Promise<{ ran: true; result: T } | { ran: false }> {
    try {
      const result = await this.redlock.using([this.key(job)], this.ttlMs, fn);
      return { ran: true, result };
    } catch (err: unknown) {
      if (err instanceof ResourceLockedError || (err instanceof ExecutionError && /quorum/i.test(err.message))) {
        this.log.debug({ job }, 'lock held by another node');
        return { ran: false };
      }
      throw err;
    }
  }
}
