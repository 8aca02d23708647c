import { EventEmitter } from 'node:events';
import { MongoError } from 'mongodb';
import { LogWriter, type PendingBatch } from './log-writer.js';
import type { Sample } from '../format/documents.js';
import { StateLog, type Logger } from '../../shared/log.js';
import { sleep } from '../../shared/util.js';

export interface SampleWriterOptions {
  flushMaxSamples: number;
  flushMaxAgeMs: number;
  bufferMaxSamples: number;
  /** batches logged to MongoDB at once (default 1) */
  writeConcurrency?: number;
  /** the clock of the scheduler's due times, for `doneAt` */
  now?: () => number;
  /** how long `stop()` waits for MongoDB to take what is buffered (default 30 s) */
  stopDeadlineMs?: number;
}

export interface WriterCounters {
  /** samples made durable in the log */
  stored: number;
  /** samples whose (pk, interval) another sample had already stored */
  duplicates: number;
  /**
   * samples that reached Redis after their period's close had begun (in the log only), or older
   * than the storage layout's first period (not kept)
   */
  late: number;
  /** logged samples this node gave up applying (Redis down too long): their period's reconcile applies them */
  deferred: number;
  dropped: number;
  batches: number;
  failedFlushes: number;
  lastBatchMs: number;
}

const BACKOFF_MAX_MS = 5000;
/** How long a stop waits for the Lua steps once everything is logged: what is left, the reconcile applies. */
const APPLY_GRACE_MS = 5000;

/**
 * Buffers samples and writes them in batches (by count or age) through the LogWriter, as two
 * independent stages:
 * - logging, up to `writeConcurrency` batches at once: one MongoDB insert per batch and period
 *   makes the samples durable; while MongoDB fails, the failed batches are retried with backoff
 *   and no new one starts, so the buffer absorbs the rest (past `bufferMaxSamples` the oldest are
 *   dropped, counted, and logged once per episode);
 * - applying, one batch after the other in the order they were made: the Lua step into the running
 *   totals and the open buffers, then the influencer documents of new pks. A Redis outage holds
 *   this stage only; logging goes on. Logged batches waiting past `bufferMaxSamples` samples are
 *   left to their period's reconcile (counted as deferred).
 * Emits `batch` ({ stored, doneAt, ms }) when a batch is logged.
 */
/** A batch made durable: its samples, when, and how long the write took. */
export interface StoredBatch {
  stored: Sample[];
  doneAt: number;
  ms: number;
}

export class SampleWriter extends EventEmitter<{ batch: [StoredBatch] }> {
  private queue: Sample[] = [];
  private head = 0;
  private logging = 0;
  private loggingSamples = 0;
  /** logged batches waiting for the apply stage, oldest first */
  private readonly toApply: Array<{ batch: PendingBatch; logged: Promise<boolean> }> = [];
  private applySamples = 0;
  private applying = false;
  private ageTimer?: NodeJS.Timeout;
  private soon?: NodeJS.Immediate;
  private logBackoffMs = 0;
  private dropEpisode = false;
  private closed = false;
  private logFailing = false;
  private applyFailing = false;
  /** unlogged samples by interval: the oldest interval not yet durable, for the member card */
  private readonly unlogged = new Map<number, number>();
  private readonly concurrency: number;
  private readonly now: () => number;
  private readonly mongoState: StateLog;
  private readonly totalsState: StateLog;
  readonly counters: WriterCounters = {
    stored: 0,
    duplicates: 0,
    late: 0,
    deferred: 0,
    dropped: 0,
    batches: 0,
    failedFlushes: 0,
    lastBatchMs: 0,
  };

  constructor(
    private readonly writer: LogWriter,
    private readonly opts: SampleWriterOptions,
    private readonly log: Logger,
  ) {
    super();
    this.concurrency = Math.max(1, opts.writeConcurrency ?? 1);
    this.now = opts.now ?? Date.now;
    this.mongoState = new StateLog(log, 'mongo');
    this.totalsState = new StateLog(log, 'totals');
  }

  /** Whether the last log attempt failed (cleared by the next one that succeeds); for readiness. */
  get failing(): boolean {
    return this.logFailing;
  }

  /** Samples not yet durable (buffered and being logged). */
  get length(): number {
    return this.queue.length - this.head + this.loggingSamples;
  }

  /** Logged samples whose Lua step is still to run. */
  get pendingApply(): number {
    return this.applySamples;
  }

  /** The oldest interval with a sample not yet in the log, or null when everything is. */
  oldestUnlogged(): number | null {
    let min: number | null = null;
    for (const at of this.unlogged.keys()) if (min === null || at < min) min = at;
    return min;
  }

  add(sample: Sample): void {
    this.queue.push(sample);
    this.unlogged.set(sample.at, (this.unlogged.get(sample.at) ?? 0) + 1);
    const over = this.length - this.opts.bufferMaxSamples;
    if (over > 0) this.drop(over);
    if (this.queue.length - this.head >= this.opts.flushMaxSamples) {
      this.soon ??= setImmediate(() => {
        this.soon = undefined;
        this.pump(false);
      });
    } else {
      this.startAgeTimer();
    }
  }

  /**
   * Logs everything buffered and applies what it can within `deadlineMs`; resolves to whether every
   * sample is in the log (what is logged but not applied is left to the period's reconcile).
   */
  async flushAll(deadlineMs = Infinity): Promise<boolean> {
    const until = Date.now() + deadlineMs;
    while (this.length > 0 && Date.now() < until) {
      this.pump(true);
      await sleep(20);
    }
    const applyUntil = Math.min(until, Date.now() + APPLY_GRACE_MS);
    while (this.toApply.length > 0 && Date.now() < applyUntil) await sleep(20);
    return this.length === 0;
  }

  /**
   * Logs what is buffered (within `deadlineMs`, by default the option's), then stops writing: no new
   * batch starts and failed ones are not retried. What MongoDB did not take by then is logged as lost.
   */
  async stop(deadlineMs = this.opts.stopDeadlineMs ?? 30_000): Promise<void> {
    if (!this.closed && !(await this.flushAll(deadlineMs))) {
      const why = 'MongoDB did not take every buffered sample before the stop deadline';
      this.log.error({ unwritten: this.length }, why);
    }
    this.closed = true;
    clearTimeout(this.ageTimer);
    if (this.soon) clearImmediate(this.soon);
  }

  private drop(count: number): void {
    const n = Math.min(count, this.queue.length - this.head);
    for (let i = this.head; i < this.head + n; i++) this.markLogged(this.queue[i]!);
    this.head += n;
    this.counters.dropped += n;
    if (!this.dropEpisode) {
      this.dropEpisode = true;
      const what = 'write buffer full: dropping the oldest samples until MongoDB catches up';
      this.log.error({ bufferMaxSamples: this.opts.bufferMaxSamples }, what);
    }
    this.compact();
  }

  private markLogged(s: Sample): void {
    const left = (this.unlogged.get(s.at) ?? 1) - 1;
    if (left > 0) this.unlogged.set(s.at, left);
    else this.unlogged.delete(s.at);
  }

  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** Buffered samples are written at the latest `flushMaxAgeMs` from now, even as a partial batch. */
  private startAgeTimer(): void {
    if (this.ageTimer || this.closed) return;
    this.ageTimer = setTimeout(() => {
      this.ageTimer = undefined;
      this.pump(true);
    }, this.opts.flushMaxAgeMs);
  }

  /** Starts batches while fewer than `writeConcurrency` are being logged: full ones, and a partial one if `partial`. */
  private pump(partial: boolean): void {
    if (this.closed) return;
    // while logging fails, only the batches in flight are retried: the buffer absorbs the rest
    while (!this.logFailing && this.logging < this.concurrency) {
      const available = this.queue.length - this.head;
      if (available === 0 || (available < this.opts.flushMaxSamples && !partial)) break;
      const taken = Math.min(available, this.opts.flushMaxSamples);
      const all = this.queue.slice(this.head, this.head + taken);
      const samples = dedupe(all);
      this.counters.duplicates += taken - samples.length;
      this.head += taken;
      this.compact();
      const batch = this.writer.batch(samples);
      this.logging++;
      this.loggingSamples += taken;
      const logged = this.logBatch(batch, all);
      this.toApply.push({ batch, logged });
      this.applySamples += batch.samples.length;
    }
    if (this.queue.length - this.head > 0) this.startAgeTimer();
    this.trimApplyQueue();
    void this.applyLoop();
  }

  /** Logs one batch until it succeeds; resolves false if the writer was closed first. */
  private async logBatch(batch: PendingBatch, taken: Sample[]): Promise<boolean> {
    for (;;) {
      const started = this.now();
      try {
        await this.writer.log(batch);
      } catch (err) {
        this.counters.failedFlushes++;
        this.logFailing = true;
        this.mongoState.set('down', { err: (err as Error).message, buffered: this.length }, 'warn');
        this.logBackoffMs = Math.min(Math.max(100, this.logBackoffMs * 2), BACKOFF_MAX_MS);
        await sleep(this.logBackoffMs);
        // closed: the batch stays unlogged (still counted in `length`)
        if (this.closed) return false;
        continue;
      }
      this.logBackoffMs = 0;
      this.logFailing = false;
      this.dropEpisode = false;
      this.logging--;
      this.loggingSamples -= taken.length;
      for (const s of taken) this.markLogged(s);
      this.mongoState.set('up', { buffered: this.length });
      const doneAt = this.now();
      this.counters.batches++;
      this.counters.stored += batch.samples.length;
      this.counters.lastBatchMs = doneAt - started;
      this.emit('batch', { stored: batch.samples, doneAt, ms: doneAt - started });
      this.pump(false);
      return true;
    }
  }

  /** Past the buffer bound, the oldest logged batches are left to their periods' reconcile. */
  private trimApplyQueue(): void {
    while (this.applySamples > this.opts.bufferMaxSamples && this.toApply.length > 1) {
      const [{ batch }] = this.toApply.splice(1, 1);
      this.applySamples -= batch!.samples.length;
      this.counters.deferred += batch!.samples.length;
    }
  }

  /** Applies logged batches in the order they were made, one at a time, retrying while Redis fails. */
  private async applyLoop(): Promise<void> {
    if (this.applying) return;
    this.applying = true;
    let backoff = 0;
    try {
      while (this.toApply.length > 0 && !this.closed) {
        const head = this.toApply[0]!;
        if (!(await head.logged)) break;
        try {
          await this.writer.apply(head.batch);
          await this.writer.register(head.batch);
        } catch (err) {
          this.applyFailing = true;
          const state = err instanceof MongoError ? this.mongoState : this.totalsState;
          state.set('down', { err: (err as Error).message, waiting: this.applySamples }, 'warn');
          backoff = Math.min(Math.max(100, backoff * 2), BACKOFF_MAX_MS);
          await sleep(backoff);
          continue;
        }
        backoff = 0;
        if (this.applyFailing) {
          this.applyFailing = false;
          this.totalsState.set('up');
        }
        this.toApply.shift();
        this.applySamples -= head.batch.samples.length;
        this.counters.duplicates += head.batch.repeats;
        this.counters.late += LogWriter.count(head.batch, 'late') + head.batch.beforeLayout;
      }
    } finally {
      this.applying = false;
    }
  }
}

/** Keeps the first sample of each (pk, interval) in a batch: a second one would be counted twice. */
function dedupe(samples: Sample[]): Sample[] {
  const seen = new Set<string>();
  return samples.filter((s) => {
    const key = `${s.pk}:${s.at}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
