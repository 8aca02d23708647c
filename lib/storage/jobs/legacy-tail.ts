// The previous layout's points of this layout's periods: what the nodes of the version that stored
// one `timeline` document per sample wrote from the start of the hour the first node of this version
// started in (the layout's first period) until they stopped. They belong to this layout's periods, so
// they are logged into them like any write batch (DESIGN.md one folder up, "Data written by the
// previous layout"): the apply step and the rebuild keep the first sample of each (pk, interval),
// the period's close writes them into its buckets, and the reader finds them there.
import { Binary, type Db } from 'mongodb';
import { encodeLog, type LogSample, type Point } from '../format/codec.js';
import { collectionNames, type LegacyPoint, type LegacyTailDoc, type LogDoc } from '../format/documents.js';
import type { StorageLayout } from '../format/layout.js';
import { insertOnce } from '../../shared/mongo-errors.js';

/** samples per log document written here: one apply call each, as a node's write batch */
const TAIL_DOC_SAMPLES = 1000;
/** what the log documents written here name as their writer */
export const TAIL_WRITER = 'timeline';

/** A point of the previous layout, or null for a document that does not hold one (it is left alone). */
export function legacyPoint(doc: LegacyPoint): (Point & { pk: number }) | null {
  const at = doc.t instanceof Date ? doc.t.getTime() : NaN;
  const counts = [doc.pk, doc.f, doc.g];
  if (!Number.isSafeInteger(at) || counts.some((n) => !Number.isSafeInteger(n) || n < 0 || n > 0xffff_ffff))
    return null;
  return { pk: doc.pk, at, f: doc.f, g: doc.g };
}

/** Whether the previous layout's points of this layout's periods were logged already (by a rebuild or `migrate`). */
export async function legacyTailLogged(db: Db): Promise<boolean> {
  return (await db.collection<LegacyTailDoc>(collectionNames.meta).findOne({ _id: 'legacy-tail' })) !== null;
}

/**
 * Collects the previous layout's points at or after the layout's first period, per period, and logs
 * them in documents of TAIL_DOC_SAMPLES. A document's `_id` is its first point's legacy `_id`, so the
 * same pass run again inserts the same documents; a point logged twice (two passes that read in
 * another order) is a repeat of its (pk, interval), stored once.
 */
export class LegacyTail {
  private readonly parts = new Map<number, { first: string; samples: LogSample[] }>();
  /** points logged so far */
  points = 0;

  constructor(
    private readonly db: Db,
    private readonly layout: StorageLayout,
  ) {}

  /** Takes a point of the layout's periods; false for one before them (the caller's). */
  async add(id: string, p: Point & { pk: number }): Promise<boolean> {
    if (p.at < this.layout.firstPeriod) return false;
    const period = this.layout.period(p.at);
    let part = this.parts.get(period);
    if (!part) this.parts.set(period, (part = { first: id, samples: [] }));
    part.samples.push(p);
    if (part.samples.length >= TAIL_DOC_SAMPLES) await this.write(period);
    return true;
  }

  /** Logs every point taken so far. */
  async flush(): Promise<void> {
    for (const period of [...this.parts.keys()]) await this.write(period);
  }

  /** Logs the rest and records that the previous layout's points of this layout's periods are in the log. */
  async finish(): Promise<void> {
    await this.flush();
    const mark: LegacyTailDoc = { _id: 'legacy-tail', points: this.points, at: new Date() };
    await insertOnce(this.db.collection<LegacyTailDoc>(collectionNames.meta), mark);
  }

  private async write(period: number): Promise<void> {
    const part = this.parts.get(period);
    if (!part) return;
    const doc: LogDoc = {
      _id: `${TAIL_WRITER}:${part.first}`,
      n: TAIL_WRITER,
      c: part.samples.length,
      b: new Binary(encodeLog(period, part.samples)),
    };
    await insertOnce(this.db.collection<LogDoc>(collectionNames.log(period)), doc);
    this.points += part.samples.length;
    this.parts.delete(period);
  }
}
