import { EventEmitter } from 'node:events';
import { MongoError } from 'mongodb';
import { BatchWriter, type PendingBatch, type Sample } from './store.js';
import { StateLog, type Logger } from './log.js';

export interface SampleWriterOptions {
  flushMaxSamples: number;
  flushMaxAgeMs: number;
  bufferMaxSamples: number;
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

/**
 * Buffers samples and writes them in batches (by count or age) through BatchWriter. A failed
 * flush is retried with backoff, the same batch with the same token, so nothing is lost or counted
 * twice; polling goes on meanwhile. Past `bufferMaxSamples` the oldest samples are dropped,
 * counted, and logged once per episode. Emits `batch` ({ stored, doneAt, ms }) after each write.
 */
export class SampleWriter extends EventEmitter {
  private queue: Sample[] = [];
  private head = 0;
  private inflight: PendingBatch | undefined;
  private timer?: NodeJS.Timeout;
  private running = false;
  private backoffMs = 0;
  private dropEpisode = false;
  private closed = false;
  private lastWriteFailed = false;
  private readonly mongoState: StateLog;
  private readonly totalsState: StateLog;
  readonly counters: WriterCounters = { stored: 0, duplicates: 0, rejected: 0, dropped: 0, batches: 0, failedFlushes: 0, lastBatchMs: 0 };

  constructor(private readonly writer: BatchWriter, private readonly opts: SampleWriterOptions, private readonly log: Logger) {
    super();
    this.mongoState = new StateLog(log, 'mongo');
    this.totalsState = new StateLog(log, 'totals');
  }

  /** Whether the last write attempt failed (cleared by the next one that succeeds); for readiness. */
  get failing(): boolean {
    return this.lastWriteFailed;
  }

  /** Samples waiting (buffered and in the batch being written). */
  get length(): number {
    return this.queue.length - this.head + (this.inflight?.samples.length ?? 0);
  }

  add(sample: Sample): void {
    this.queue.push(sample);
    const over = this.length - this.opts.bufferMaxSamples;
    if (over > 0) this.drop(over);
    if (this.queue.length - this.head >= this.opts.flushMaxSamples) this.kick(0);
    else if (!this.timer && !this.running) this.kick(this.opts.flushMaxAgeMs);
  }

  /** Writes everything buffered; resolves when the buffer is empty (retrying while Mongo is down). */
  async flushAll(deadlineMs = Infinity): Promise<boolean> {
    const until = Date.now() + deadlineMs;
    while (this.length > 0 && Date.now() < until) {
      if (!this.running) this.kick(0);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.length === 0;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
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

  private kick(delay: number): void {
    if (this.closed && delay > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.timer = undefined; void this.run(); }, delay);
  }

  /** Writes batches until the buffer is empty or a write fails (then retries after a backoff). */
  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let first = true; ; first = false) {
        if (!this.inflight) {
          const available = this.queue.length - this.head;
          if (available === 0) break;
          // after a full batch, a partial one waits for its age (or the next full batch)
          if (!first && available < this.opts.flushMaxSamples && !this.closed) {
            this.kick(this.opts.flushMaxAgeMs);
            break;
          }
          const taken = Math.min(available, this.opts.flushMaxSamples);
          const samples = dedupe(this.queue.slice(this.head, this.head + taken));
          this.counters.duplicates += taken - samples.length;
          this.head += taken;
          this.compact();
          this.inflight = BatchWriter.batch(samples);
        }
        const batch = this.inflight;
        const started = Date.now();
        try {
          await this.writer.write(batch);
        } catch (err) {
          this.counters.failedFlushes++;
          this.lastWriteFailed = true;
          if (err instanceof MongoError) this.mongoState.set('down', { err: err.message, buffered: this.length }, 'warn');
          // not MongoDB's: the running totals' step in Redis failed (Redis down)
          else this.totalsState.set('down', { err: (err as Error).message, buffered: this.length }, 'warn');
          this.backoffMs = Math.min(Math.max(100, this.backoffMs * 2), 5000);
          this.kick(this.backoffMs);
          return;
        }
        this.backoffMs = 0;
        this.lastWriteFailed = false;
        this.dropEpisode = false;
        this.mongoState.set('up', { buffered: this.length });
        this.totalsState.set('up');
        this.inflight = undefined;
        const doneAt = (this.opts.now ?? Date.now)();
        this.counters.batches++;
        this.counters.stored += batch.stored!.length;
        this.counters.duplicates += batch.duplicates ?? 0;
        this.counters.rejected += batch.rejected ?? 0;
        this.counters.lastBatchMs = doneAt - started;
        this.emit('batch', { stored: batch.stored, doneAt, ms: doneAt - started });
      }
    } finally {
      this.running = false;
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
