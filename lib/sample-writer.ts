import { EventEmitter } from 'node:events';
import { MongoError } from 'mongodb';
import { BatchWriter, type PendingBatch, type Sample } from './store.js';
import { StateLog, type Logger } from './log.js';

export interface SampleWriterOptions {
  flushMaxSamples: number;
  flushMaxAgeMs: number;
  bufferMaxSamples: number;
  /** batches written at once (default 1) */
  writeConcurrency?: number;
  /** the clock of the scheduler's due times, for `doneAt` */
  now?: () => number;
}

export interface WriterCounters {
  stored: number;
  duplicates: number;
  rejected: number;
  dropped: number;
  batches: number;
  failedFlushes: number;
  lastBatchMs: number;
}

/** A batch being written, and a promise that settles once it is written (the next batch's turn for the totals). */
interface InFlight {
  batch: PendingBatch;
  written: Promise<void>;
}

/**
 * Buffers samples and writes them in batches (by count or age) through BatchWriter, up to
 * `writeConcurrency` batches at once: their MongoDB inserts overlap, while their Redis totals steps
 * run in the order the batches were made, so the latest counts and the growth never see an older
 * sample after a newer one. A failed batch is retried with backoff, the same batch with the same
 * token, so nothing is lost or counted twice; no new batch starts until writes succeed again, and
 * polling goes on meanwhile. Past `bufferMaxSamples` the oldest buffered samples are dropped,
 * counted, and logged once per episode. Emits `batch` ({ stored, doneAt, ms }) after each write.
 */
export class SampleWriter extends EventEmitter {
  private queue: Sample[] = [];
  private head = 0;
  private readonly inflight: InFlight[] = [];
  private inflightSamples = 0;
  /** settles when the newest batch so far is written */
  private lastWritten: Promise<void> = Promise.resolve();
  private ageTimer?: NodeJS.Timeout;
  private soon?: NodeJS.Immediate;
  private backoffMs = 0;
  private dropEpisode = false;
  private closed = false;
  private lastWriteFailed = false;
  private readonly concurrency: number;
  private readonly now: () => number;
  private readonly mongoState: StateLog;
  private readonly totalsState: StateLog;
  readonly counters: WriterCounters = { stored: 0, duplicates: 0, rejected: 0, dropped: 0, batches: 0, failedFlushes: 0, lastBatchMs: 0 };

  constructor(private readonly writer: BatchWriter, private readonly opts: SampleWriterOptions, private readonly log: Logger) {
    super();
    this.concurrency = Math.max(1, opts.writeConcurrency ?? 1);
    this.now = opts.now ?? Date.now;
    this.mongoState = new StateLog(log, 'mongo');
    this.totalsState = new StateLog(log, 'totals');
  }

  /** Whether the last write attempt failed (cleared by the next one that succeeds); for readiness. */
  get failing(): boolean {
    return this.lastWriteFailed;
  }

  /** Samples waiting (buffered and in the batches being written). */
  get length(): number {
    return this.queue.length - this.head + this.inflightSamples;
  }

  add(sample: Sample): void {
    this.queue.push(sample);
    const over = this.length - this.opts.bufferMaxSamples;
    if (over > 0) this.drop(over);
    if (this.queue.length - this.head >= this.opts.flushMaxSamples) this.soon ??= setImmediate(() => { this.soon = undefined; this.pump(false); });
    else this.startAgeTimer();
  }

  /** Writes everything buffered; resolves when the buffer is empty (retrying while Mongo is down). */
  async flushAll(deadlineMs = Infinity): Promise<boolean> {
    const until = Date.now() + deadlineMs;
    while (this.length > 0 && Date.now() < until) {
      this.pump(true);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.length === 0;
  }

  /** Stops writing: no new batch starts and failed ones are not retried. */
  close(): void {
    this.closed = true;
    clearTimeout(this.ageTimer);
    if (this.soon) clearImmediate(this.soon);
  }

  private drop(count: number): void {
    const available = this.queue.length - this.head;
    const n = Math.min(count, available);
    this.head += n;
    this.counters.dropped += n;
    if (!this.dropEpisode) {
      this.dropEpisode = true;
      this.log.error({ bufferMaxSamples: this.opts.bufferMaxSamples }, 'write buffer full: dropping the oldest samples until MongoDB catches up');
    }
    this.compact();
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
    this.ageTimer = setTimeout(() => { this.ageTimer = undefined; this.pump(true); }, this.opts.flushMaxAgeMs);
  }

  /** Starts batches while fewer than `writeConcurrency` are in flight: full ones, and a partial one if `partial`. */
  private pump(partial: boolean): void {
    // while writes fail, only the batches in flight are retried: the buffer absorbs the rest
    if (this.closed || this.lastWriteFailed) return;
    while (this.inflight.length < this.concurrency) {
      const available = this.queue.length - this.head;
      if (available === 0 || (available < this.opts.flushMaxSamples && !partial)) break;
      const taken = Math.min(available, this.opts.flushMaxSamples);
      const samples = dedupe(this.queue.slice(this.head, this.head + taken));
      this.counters.duplicates += taken - samples.length;
      this.head += taken;
      this.compact();
      const batch = BatchWriter.batch(samples);
      const turn = this.lastWritten;
      const job: InFlight = { batch, written: this.write(batch, turn) };
      this.lastWritten = job.written;
      this.inflight.push(job);
      this.inflightSamples += samples.length;
    }
    if (this.queue.length - this.head > 0) this.startAgeTimer();
  }

  /** Writes one batch until it succeeds (or the writer is closed); its totals step waits for `turn`. */
  private async write(batch: PendingBatch, turn: Promise<void>): Promise<void> {
    for (;;) {
      const started = this.now();
      try {
        await this.writer.write(batch, turn);
      } catch (err) {
        this.counters.failedFlushes++;
        this.lastWriteFailed = true;
        if (err instanceof MongoError) this.mongoState.set('down', { err: err.message, buffered: this.length }, 'warn');
        // not MongoDB's: the running totals' step in Redis failed (Redis down)
        else this.totalsState.set('down', { err: (err as Error).message, buffered: this.length }, 'warn');
        this.backoffMs = Math.min(Math.max(100, this.backoffMs * 2), 5000);
        await new Promise((r) => setTimeout(r, this.backoffMs));
        // closed: the batch stays unwritten (still counted in `length`), and so do the ones after it
        if (this.closed) return new Promise<void>(() => undefined);
        continue;
      }
      this.done(batch, started);
      return;
    }
  }

  private done(batch: PendingBatch, started: number): void {
    this.backoffMs = 0;
    this.lastWriteFailed = false;
    this.dropEpisode = false;
    const i = this.inflight.findIndex((j) => j.batch === batch);
    if (i >= 0) this.inflight.splice(i, 1);
    this.inflightSamples -= batch.samples.length;
    this.mongoState.set('up', { buffered: this.length });
    this.totalsState.set('up');
    const doneAt = this.now();
    this.counters.batches++;
    this.counters.stored += batch.stored!.length;
    this.counters.duplicates += batch.duplicates ?? 0;
    this.counters.rejected += batch.rejected ?? 0;
    this.counters.lastBatchMs = doneAt - started;
    this.emit('batch', { stored: batch.stored, doneAt, ms: doneAt - started });
    this.pump(false);
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
