import type { RedisClient } from '../../shared/redis.js';
import type { Db } from 'mongodb';
import type { ClusterLock } from '../../cluster/locks.js';
import type { Logger } from '../../shared/log.js';
import { PeriodicJob } from '../../shared/services.js';
import { answerPeriods, collectionNames, docIds, parseCollectionName } from '../format/documents.js';
import { clusterKeys, SLICE_MARKS, sliceKeys, type ClusterKeys } from '../../shared/keys.js';
import { DAY_MS, BUCKETS_PER_ROLLUP, type StorageLayout } from '../format/layout.js';
import type { StorageJobDeps } from './job-deps.js';

export interface RetentionSettings {
  timelineRetentionDays: number;
  rollupRetentionDays: number;
  logRetentionHours: number;
}

export interface RetentionOptions {
  settings: RetentionSettings;
  /** the clock periods are read with */
  now?: () => number;
}

/** Checkpoints kept behind each slice's newest: a rollup period's worth (the rollup reads them) and a margin. */
const CHECKPOINTS_KEPT = BUCKETS_PER_ROLLUP + 2;

interface RetentionMark {
  _id: 'retention';
  /** checkpoints of periods before this are deleted */
  checkpointsBefore: number;
}

/** What one pass removed. */
export interface RetentionReport {
  dropped: string[];
  checkpoints: number;
}

/**
 * Enforces the retention settings as a singleton job (lock `retention`), never by a scan: whole
 * collections are dropped (`buckets_<day>` past TIMELINE_RETENTION_DAYS, `rollups_<month>` past
 * ROLLUP_RETENTION_DAYS, `log_<P>` once P is closed and older than LOG_RETENTION_HOURS), and
 * checkpoints are deleted by exact `_id`, period by period up to what each slice still needs.
 */
export class RetentionJob {
  private readonly redis: RedisClient;
  private readonly db: Db;
  private readonly lock: ClusterLock;
  private readonly layout: StorageLayout;
  private readonly log: Logger;
  private readonly settings: RetentionSettings;
  private readonly keys: ClusterKeys;
  private readonly cluster: string;
  private readonly now: () => number;
  private readonly job: PeriodicJob<RetentionReport | null>;

  constructor(deps: StorageJobDeps, opts: RetentionOptions) {
    ({ redis: this.redis, db: this.db, lock: this.lock, layout: this.layout, log: this.log } = deps);
    this.settings = opts.settings;
    this.keys = clusterKeys(deps.cluster);
    this.cluster = deps.cluster;
    this.now = opts.now ?? Date.now;
    const everyMs = Math.min(600_000, this.layout.bucketMs);
    const failure = 'retention pass failed; retrying later';
    this.job = new PeriodicJob(() => this.runOnce(), { log: this.log, failure, everyMs, firstAfterMs: everyMs });
  }

  start(): void {
    this.job.start();
  }

  async stop(): Promise<void> {
    await this.job.stop();
  }

  async runOnce(): Promise<RetentionReport | null> {
    const r = await this.lock.runExclusive('retention', () => this.pass());
    return r.ran ? r.result : null;
  }

  private async pass(): Promise<RetentionReport> {
    const now = this.now();
    const closed = Number((await this.redis.get(this.keys.closed)) ?? -Infinity);
    const dropped: string[] = [];
    // a pk's daily answer lives in its check period's collection: the two newest are enough
    const answers = new Set((await answerPeriods(this.db)).slice(2).map(collectionNames.answers));
    for (const { name } of await this.db.listCollections({}, { nameOnly: true }).toArray()) {
      if (answers.has(name) || this.expired(name, now, closed)) {
        await this.db.dropCollection(name).catch(() => undefined);
        dropped.push(name);
      }
    }
    const checkpoints = await this.deleteCheckpoints();
    if (dropped.length > 0 || checkpoints > 0) this.log.info({ dropped, checkpoints }, 'retention: old data removed');
    return { dropped, checkpoints };
  }

  /** Whether a collection of the layout is past its retention. */
  private expired(name: string, now: number, closed: number): boolean {
    const s = this.settings;
    const c = parseCollectionName(name);
    switch (c?.kind) {
      case 'log':
        return c.period <= closed && c.period + this.layout.bucketMs + s.logRetentionHours * 3_600_000 < now;
      case 'buckets':
        return c.day + DAY_MS + s.timelineRetentionDays * DAY_MS < now;
      case 'rollups':
        // the month's end: the start of the next month
        return nextMonth(c.month) + s.rollupRetentionDays * DAY_MS < now;
      default:
        return false;
    }
  }

  /** Deletes, by `_id`, every checkpoint older than what its slice still needs. */
  private async deleteCheckpoints(): Promise<number> {
    const { bucketMs, slices, firstPeriod } = this.layout;
    const marks = await Promise.all(
      Array.from({ length: slices }, (_, s) =>
        this.redis.hmget(sliceKeys(this.cluster, slices, s).marks, SLICE_MARKS.since, SLICE_MARKS.checkpoint),
      ),
    );
    // a slice whose totals are gone does not know its newest checkpoint until it is rebuilt
    if (marks.some(([since]) => since === null)) return 0;
    // a slice that never had a checkpoint has none to keep; one with no recent data keeps its newest, however old
    const newest = marks.flatMap(([, checkpoint]) => (checkpoint === null ? [] : [Number(checkpoint)]));
    if (newest.length === 0) return 0;
    const keepFrom = Math.min(...newest) - CHECKPOINTS_KEPT * bucketMs;
    const meta = this.db.collection<RetentionMark>(collectionNames.meta);
    const mark = await meta.findOne({ _id: 'retention' });
    let from = mark?.checkpointsBefore ?? firstPeriod;
    if (from >= keepFrom) return 0;
    const checkpoints = this.db.collection<{ _id: string }>(collectionNames.checkpoints);
    let deleted = 0;
    for (; from < keepFrom; from += bucketMs) {
      for (let s = 0; s < slices; s++)
        deleted += (await checkpoints.deleteOne({ _id: docIds.checkpoint(from, s) })).deletedCount;
    }
    await meta.updateOne({ _id: 'retention' }, { $set: { checkpointsBefore: keepFrom } }, { upsert: true });
    return deleted;
  }
}

/** The start of the UTC month after the one starting at `month`. */
function nextMonth(month: number): number {
  const d = new Date(month);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}
