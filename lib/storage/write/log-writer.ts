import { Binary, type Collection, type Db } from 'mongodb';
import { insertIgnoringDuplicates, insertOnce } from '../../shared/mongo-errors.js';
import { collections, type InfluencerDoc, type Sample, collectionNames } from '../format/documents.js';
import type { ApplyOutcome, Totals } from '../state/totals.js';
import { encodeLog, type LogSample } from '../format/codec.js';
import { type StorageLayout } from '../format/layout.js';
import type { LogDoc } from '../format/documents.js';

/** This process in every token it makes: its start time and pid (base 36); a restart makes another. */
const PROCESS_TAG = `${Math.round(performance.timeOrigin).toString(36)}:${process.pid.toString(36)}`;
let tokensMade = 0;

/**
 * A batch token no other batch can have: the node id (no two live processes share one, and it holds
 * no ':'), this process, and a counter. It is the log document's `_id` and what a period's reconcile
 * skips once applied, so two batches with one token would lose one of them as "already stored".
 */
export function batchToken(nodeId: string): string {
  return `${nodeId}:${PROCESS_TAG}:${(++tokensMade).toString(36)}`;
}

/** A batch's samples of one period, and how far its writing got. */
export interface LogPart {
  period: number;
  samples: Sample[];
  logged?: boolean;
  /** per sample: whether its username travels with it (the first time, or changed, for this process) */
  named?: boolean[];
  /** per slice of the part, what applying it did; a slice without one is still to apply */
  outcomes: Map<number, ApplyOutcome['kind']>;
  /** recorded as applied in every slice (its period's reconcile skips it) */
  marked?: boolean;
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
  /** the layout's slice count: a sample's slice is its pk modulo this */
  slices: number;
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
  /** per pk, a hash of the username this process last logged: a name travels only when new or changed */
  private readonly named = new Map<number, number>();

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
      token: batchToken(this.nodeId),
      samples: kept,
      parts: [...parts]
        .sort((a, b) => a[0] - b[0])
        .map(([period, list]) => ({ period, samples: list, outcomes: new Map() })),
      attempts: 0,
      repeats: 0,
      fresh: [],
      beforeLayout: samples.length - kept.length,
      slices: this.layout.slices,
    };
  }

  /** Step 1: every part into its period's log; throws if MongoDB failed (call again to retry). */
  async log(batch: PendingBatch): Promise<void> {
    batch.attempts++;
    for (const part of batch.parts) {
      if (part.logged) continue;
      part.named ??= part.samples.map((s) => this.named.get(s.pk) !== nameHash(s.username));
      const named = part.named;
      const samples: LogSample[] = part.samples.map((s, i) => ({
        pk: s.pk,
        at: s.at,
        f: s.followerCount,
        g: s.followingCount,
        ...(named[i] ? { username: s.username } : {}),
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
      for (const s of part.samples) this.named.set(s.pk, nameHash(s.username));
    }
  }

  /**
   * Step 2: every logged part through the Lua script, one call per slice (in parallel: on a Redis
   * Cluster each goes to its slice's master); throws if Redis failed for a slice (call again to
   * retry: the slices done are not applied again).
   */
  async apply(batch: PendingBatch): Promise<void> {
    let failure: unknown;
    for (const part of batch.parts) {
      if (!part.logged) continue;
      const named = part.named ?? [];
      const indexed = part.samples.map((s, i) => ({ s, i, pk: s.pk }));
      const pending = [...this.totals.bySlice(indexed)].filter(([slice]) => !part.outcomes.has(slice));
      const results = await Promise.allSettled(
        pending.map(([slice, list]) =>
          this.totals.applySlice(
            part.period,
            slice,
            list.map(({ s, i }) => ({
              pk: s.pk,
              at: s.at,
              followerCount: s.followerCount,
              followingCount: s.followingCount,
              ...(named[i] ? { username: s.username } : {}),
            })),
            'live',
          ),
        ),
      );
      results.forEach((r, k) => {
        if (r.status === 'rejected') {
          failure ??= r.reason;
          return;
        }
        const outcome = r.value;
        // samples left to a rebuild: its period's reconcile (or the rebuild's refill) applies the document
        part.outcomes.set(pending[k]![0], outcome.kind === 'applied' && outcome.older > 0 ? 'rebuild' : outcome.kind);
        if (outcome.kind === 'applied') {
          batch.repeats += outcome.repeats;
          batch.fresh.push(...outcome.fresh);
        }
      });
      if (
        failure === undefined &&
        !part.marked &&
        !part.samples.some((s) => part.outcomes.get(s.pk % batch.slices) === 'rebuild')
      ) {
        await this.totals.markApplied(part.period, batch.token);
        part.marked = true;
      }
    }
    if (failure !== undefined) throw failure;
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

  /** Samples of a batch whose slice ended in the timeline's totals, late, or left to the rebuild. */
  static count(batch: PendingBatch, outcome: ApplyOutcome['kind']): number {
    let n = 0;
    for (const part of batch.parts)
      for (const s of part.samples) if (part.outcomes.get(s.pk % batch.slices) === outcome) n++;
    return n;
  }

  /** What applying a part did: the one outcome of all its slices, 'mixed', or undefined while one is still to apply. */
  static outcome(batch: PendingBatch, part: LogPart): ApplyOutcome['kind'] | 'mixed' | undefined {
    const slices = new Set(part.samples.map((s) => s.pk % batch.slices));
    const kinds = new Set([...slices].map((slice) => part.outcomes.get(slice)));
    if (kinds.has(undefined)) return undefined;
    return kinds.size === 1 ? [...kinds][0] : 'mixed';
  }
}

/** FNV-1a of a username: what the writer remembers per pk to send a name again only when it changed. */
function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
