// The service contract (like dskit's services): every long-lived part of a node is a Service, every
// timer loop a PeriodicJob, and the node keeps its services in a ServiceStack that stops them in the
// reverse order of their start.
import type { Logger } from './log.js';

/**
 * A long-lived part: `start()` once (a part with nothing to start leaves it out), `stop()` once it is
 * no longer needed, waiting for work in progress. `stop()` is idempotent.
 */
export interface Service {
  start?(): void | Promise<void>;
  stop(): void | Promise<void>;
}

/** `ServiceStack.start()` after `stopAll()` began: the start of the whole is abandoned. */
export class StackStopped extends Error {
  constructor(name: string) {
    super(`${name} not started: stopping`);
    this.name = 'StackStopped';
  }
}

/**
 * Services started in order and stopped in reverse: a part started after another may use it until
 * it stops, so adding a part is one line in the composition root.
 */
export class ServiceStack {
  /** the services to stop, the last started last */
  private readonly started: Array<{ name: string; service: Service }> = [];
  /** every service started, in order, and every one stopped, in order */
  private readonly record = { started: [] as string[], stopped: [] as string[] };
  private stopping?: Promise<void>;

  constructor(private readonly log: Logger) {}

  /** The names of the services started and stopped so far, each in its order (for logs and tests). */
  get history(): { started: string[]; stopped: string[] } {
    return { started: [...this.record.started], stopped: [...this.record.stopped] };
  }

  /**
   * Starts `service` and keeps it for `stopAll()`; resolves to it. A service whose start throws is
   * stopped all the same (its constructor may hold connections or timers) and the error goes to the
   * caller. Once `stopAll()` has begun, the service is stopped instead and StackStopped thrown, as
   * it is when `stopAll()` began while the service was starting.
   */
  async start<S extends Service>(name: string, service: S): Promise<S> {
    if (this.stopping) {
      await service.stop();
      throw new StackStopped(name);
    }
    this.started.push({ name, service });
    this.record.started.push(name);
    try {
      await service.start?.();
    } catch (err) {
      // stopped all the same: its constructor may hold connections or timers
      const i = this.started.findIndex((s) => s.service === service);
      if (i >= 0) this.started.splice(i, 1);
      await Promise.resolve(service.stop()).catch(() => undefined);
      throw err;
    }
    if (this.stopping) throw new StackStopped(name);
    return service;
  }

  /** Stops every service started, the last first; one that fails is logged and the rest still stop. Idempotent. */
  stopAll(): Promise<void> {
    this.stopping ??= (async () => {
      for (let s = this.started.pop(); s; s = this.started.pop()) {
        try {
          await s.service.stop();
        } catch (err) {
          this.log.error({ service: s.name, err: (err as Error).message }, 'a service failed to stop');
        }
        this.record.stopped.push(s.name);
      }
    })();
    return this.stopping;
  }
}

export interface PeriodicOptions<T> {
  log: Logger;
  /** the log line of a failed run (once per distinct error) */
  failure: string;
  /** the wait after a run ends (after a failed one always) */
  everyMs: number;
  /** the wait before the first run (default 0) */
  firstAfterMs?: number;
  /** the wait after a successful run, from its result (default everyMs) */
  next?: (result: T) => number;
  /** does not keep the process alive */
  unref?: boolean;
}

/**
 * A timer loop that never overlaps itself: each run is scheduled after the previous one ended
 * (setTimeout, never setInterval), `everyMs` later or as its result says. A failed run is logged once
 * per distinct error and retried at the next tick. `runNow()` and `runSoon()` bring the next run
 * forward; `stop()` waits for a run in progress. A synchronous run runs synchronously.
 */
export class PeriodicJob<T = unknown> implements Service {
  private timer?: NodeJS.Timeout;
  /** when the timer fires */
  private dueAt = Infinity;
  private running?: Promise<void>;
  /** a synchronous run is in progress (a run that asks for another gets it after it) */
  private inRun = false;
  /** a run was asked for while one was in progress: it follows at once */
  private again = false;
  private stopped = true;
  private lastError?: string;

  constructor(
    private readonly run: () => T | Promise<T>,
    private readonly opts: PeriodicOptions<T>,
  ) {}

  /** Starts the loop: the first run after `firstAfterMs`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(this.opts.firstAfterMs ?? 0);
  }

  /** Runs now (a synchronous run before this returns), or right after the run in progress. */
  runNow(): void {
    if (this.stopped) return;
    if (this.running || this.inRun) this.again = true;
    else this.fire();
  }

  /** The next run in `ms` at the latest; once however many ask meanwhile. */
  runSoon(ms: number): void {
    if (this.stopped) return;
    if (this.running || this.inRun) this.again = true;
    else this.schedule(ms);
  }

  /** Stops the loop and resolves once a run in progress has ended. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dueAt = Infinity;
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    const at = Date.now() + ms;
    if (this.timer && this.dueAt <= at) return;
    clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, ms));
    if (this.opts.unref) this.timer.unref();
  }

  private fire(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dueAt = Infinity;
    if (this.stopped) return;
    let result: T | Promise<T>;
    this.inRun = true;
    try {
      result = this.run();
    } catch (err) {
      this.failed(err as Error);
      return;
    } finally {
      this.inRun = false;
    }
    if (!(result instanceof Promise)) {
      this.succeeded(result);
      return;
    }
    this.running = result.then(
      (r) => {
        this.running = undefined;
        this.succeeded(r);
      },
      (err: Error) => {
        this.running = undefined;
        this.failed(err);
      },
    );
  }

  private succeeded(result: T): void {
    this.lastError = undefined;
    this.after(this.opts.next ? this.opts.next(result) : this.opts.everyMs);
  }

  private failed(err: Error): void {
    const message = err?.message ?? String(err);
    if (message !== this.lastError) this.opts.log.warn({ err: message }, this.opts.failure);
    this.lastError = message;
    this.after(this.opts.everyMs);
  }

  private after(waitMs: number): void {
    const again = this.again;
    this.again = false;
    this.schedule(again ? 0 : waitMs);
  }
}
