import type { RedisClient } from '../shared/redis.js';
import Redlock, { ExecutionError, ResourceLockedError, type Lock } from 'redlock';
import type { Logger } from '../shared/log.js';
import { clusterKeys } from '../shared/keys.js';
import { PeriodicJob } from '../shared/services.js';

/**
 * Singleton work for the cluster (retention, index creation, rebuilding the rank index): at most
 * one node runs a job at a time. Never used on the per-sample path. The lock is extended every
 * TTL/3 while the job runs; if the holder dies, the lock expires after `ttlMs` and another node
 * may take it.
 *
 * redlock's own `using()` is not used: when an extension fails it retries in a tight loop until
 * the lock expires (even when another holder already has the key), and a failed release after
 * the job is thrown, which would turn a job that ran into an error or into "did not run".
 */
export class ClusterLock {
  private readonly redlock: Redlock;

  constructor(
    redis: RedisClient,
    private readonly cluster: string,
    private readonly log: Logger,
    private readonly ttlMs = 10_000,
  ) {
    if (!Number.isInteger(ttlMs) || ttlMs < 300)
      throw new RangeError(`lock TTL must be an integer ≥ 300 ms, got ${ttlMs}`);
    this.redlock = new Redlock([redis], { retryCount: 0 });
    // failures are handled where they happen (acquire, extend, release); the event adds nothing
    this.redlock.on('error', () => undefined);
  }

  key(job: string): string {
    return clusterKeys(this.cluster).lock(job);
  }

  /**
   * Runs `job` if no other node holds its lock; resolves to `{ ran: false }` when one does, and
   * rejects when Redis cannot be asked. The job gets an AbortSignal that fires as soon as the lock
   * is lost (another holder has the key, or it expired while Redis was unreachable): it should
   * stop then. The job's own error is passed through; a failed release is only logged (the lock
   * expires with its TTL).
   */
  async runExclusive<T>(
    job: string,
    fn: (signal: AbortSignal) => Promise<T>,
  ): Promise<{ ran: true; result: T } | { ran: false }> {
    const key = this.key(job);
    let lock: Lock;
    try {
      lock = await this.redlock.acquire([key], this.ttlMs);
    } catch (err) {
      const reason = await failureReason(err);
      if (reason === 'locked') {
        this.log.debug({ job }, 'lock held by another node');
        return { ran: false };
      }
      throw new Error(`could not take the lock ${key} (Redis: ${reason})`, { cause: err });
    }

    const controller = new AbortController();
    let done = false;
    const lost = (why: string): void => {
      this.log.warn({ job, why }, 'lock lost while the job ran; signalling it to stop');
      controller.abort(new Error(`lock ${key} lost: ${why}`));
      void renewal.stop();
    };
    // extended every TTL/3 while the job runs; each run says when the next is due
    const extend = async (): Promise<number> => {
      try {
        lock = await lock.extend(this.ttlMs);
        return this.ttlMs / 3;
      } catch (err) {
        if (done) return this.ttlMs;
        const reason = await failureReason(err);
        if (reason === 'locked') lost('another holder has the key');
        else if (lock.expiration <= Date.now()) lost(`expired while Redis failed (${reason})`);
        // else Redis is unreachable for now: try again while the lock is still ours (lost() stopped the renewal)
        return Math.max(0, Math.min(250, lock.expiration - Date.now()));
      }
    };
    const every = this.ttlMs / 3;
    const failure = 'extending a lock failed';
    const renewal = new PeriodicJob(extend, {
      log: this.log,
      failure,
      everyMs: every,
      firstAfterMs: every,
      next: (ms) => ms,
    });
    renewal.start();

    try {
      return { ran: true, result: await fn(controller.signal) };
    } finally {
      done = true;
      await renewal.stop();
      if (!controller.signal.aborted) {
        await lock.release().catch(async (err: unknown) => {
          this.log.warn({ job, err: await failureReason(err) }, 'could not release the lock; it expires with its TTL');
        });
      }
    }
  }
}

/** 'locked' when Redis answered that another value holds the key; otherwise what went wrong. */
async function failureReason(err: unknown): Promise<string> {
  if (err instanceof ExecutionError) {
    if (err.attempts.length === 0) return err.message;
    const stats = await err.attempts[err.attempts.length - 1];
    const errors = [...stats.votesAgainst.values()];
    if (errors.length > 0 && errors.every((e) => e instanceof ResourceLockedError)) return 'locked';
    return errors.map((e) => e.message).join('; ') || err.message;
  }
  return err instanceof Error ? err.message : String(err);
}
