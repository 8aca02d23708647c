import { randomInt } from 'node:crypto';
import { Binary, type Collection, type Db } from 'mongodb';
import { insertIgnoringDuplicates, insertOnce } from '../../shared/mongo-errors.js';
import { collections, type InfluencerDoc, type Sample, collectionNames } from '../format/documents.js';
import { TotalsNotReady, type Totals } from '../state/totals.js';
import { encodeLog, type LogSample } from '../format/codec.js';
import { type StorageLayout } from '../format/layout.js';
import type { LogDoc } from '../format/documents.js';

/** A batch's samples of one period, and how far its writing got. */
export interface LogPart {
  period: number;
  samples: Sample[];
  logged?: boolean;
  /** what applying it did; unset until applied (or given up to the period's reconcile) */
  outcome?: 'applied' | 'replayed' | 'late' | 'rebuild';
}

/** A batch in flight; each step is remembered so a retry resumes where the last attempt failed. */
export interface PendingBatch {
  token: string;
  samples: Sample[];
  parts: LogPart[];
  attempts: number;
  repeats: number;
  /** pks seen for the first time, whose influencer document is still to write */
  fresh: number[];
  registered?: boolean;
  /** samples left out: older than the layout's first period (no timeline reads them) */
  beforeLayout: number;
}

/**
 * Writes a batch in three steps, each safe to repeat:
 * 1. `log`: one document per period into `log_<P>`: the samples are durable; a repeated insert
 *    is a duplicate key of the same document;
 * 2. `apply`: each document through the Lua script (once per token): repeats of a (pk, interval)
 *    are refused there, new points go to the running totals and the period's open buffers;
 * 3. `register`: an influencer document for each pk seen for the first time.
 * Step 1 never waits for Redis. A document that step 2 never reaches (the node died, Redis stayed
 * down) is applied by its period's reconcile before the period closes.
 */
export class LogWriter {
  private readonly influencers: Collection<InfluencerDoc>;
  /** pks whose username this process has logged: a name travels in the log once per pk and process */
  private readonly named = new Set<number>();

  constructor(
    private readonly db: Db,
    private readonly totals: Totals,
    private readonly layout: StorageLayout,
    private readonly nodeId: string,
  ) {
    this.influencers = collections(db).influencers;
  }

  /**
   * A batch of `samples`, one part per period. A sample older than the layout's first period is
   * left out (counted in `beforeLayout`): a node that gains pks just after a new cluster's layout
   * began catches up the interval before it, which no reader or close would ever reach.
   */
  batch(samples: Sample[]): PendingBatch {
    const parts = new Map<number, Sample[]>();
    const first = this.layout.firstPeriod;
    const kept = samples.some((s) => s.at < first) ? samples.filter((s) => s.at >= first) : samples;
    for (const s of kept) {
      const p = this.layout.period(s.at);
      let list = parts.get(p);
      if (!list) parts.set(p, (list = []));
      list.push(s);
    }
    return {
      token: String(randomInt(1, 2 ** 47) * 2 + 1),
      samples: kept,
      parts: [...parts].sort((a, b) => a[0] - b[0]).map(([period, list]) => ({ period, samples: list })),
      attempts: 0,
      repeats: 0,
      fresh: [],
      beforeLayout: samples.length - kept.length,
    };
  }

  /** Step 1: every part into its period's log; throws if MongoDB failed (call again to retry). */
  async log(batch: PendingBatch): Promise<void> {
    batch.attempts++;
    for (const part of batch.parts) {
      if (part.logged) continue;
      const samples: LogSample[] = part.samples.map((s) => ({
        pk: s.pk,
        at: s.at,
        f: s.followerCount,
        g: s.followingCount,
        ...(this.named.has(s.pk) ? {} : { username: s.username }),
      }));
      const doc: LogDoc = {
        _id: batch.token,
        n: this.nodeId,
        c: samples.length,
        b: new Binary(encodeLog(part.period, samples)),
      };
      // a duplicate: an earlier attempt stored it and lost the answer
      await insertOnce(this.db.collection<LogDoc>(collectionNames.log(part.period)), doc);
      part.logged = true;
      for (const s of part.samples) this.named.add(s.pk);
    }
  }

  /** Step 2: every logged part through the Lua script; throws if Redis failed (call again to retry). */
  async apply(batch: PendingBatch): Promise<void> {
    for (const part of batch.parts) {
      if (part.outcome || !part.logged) continue;
      try {
        const r = await this.totals.applyLog(batch.token, part.period, part.samples, 'live', (pk) =>
          this.layout.slice(pk),
        );
        part.outcome = r.kind;
        if (r.kind === 'applied') {
          batch.repeats += r.repeats;
          batch.fresh.push(...r.fresh);
        }
      } catch (err) {
        // Redis lost the totals: the rebuild counts these samples from the log
        if (!(err instanceof TotalsNotReady)) throw err;
        part.outcome = 'rebuild';
      }
    }
  }

  /** Step 3: an influencer document for each pk seen for the first time; throws if MongoDB failed. */
  async register(batch: PendingBatch): Promise<void> {
    if (batch.registered) return;
    if (batch.fresh.length > 0) {
      const firstOf = new Map<number, Sample>();
      for (const s of batch.samples) if (!firstOf.has(s.pk)) firstOf.set(s.pk, s);
      const docs = batch.fresh.map((pk) => {
        const first = firstOf.get(pk);
        return { _id: pk, username: first?.username ?? '', firstAt: new Date(first?.at ?? Date.now()) };
      });
      await insertIgnoringDuplicates(this.influencers, docs);
    }
    batch.registered = true;
  }

  /** Samples of a batch that ended in the timeline's totals, late, or left to the rebuild. */
  static count(batch: PendingBatch, outcome: LogPart['outcome']): number {
    return batch.parts.reduce((n, p) => n + (p.outcome === outcome ? p.samples.length : 0), 0);
  }
}
