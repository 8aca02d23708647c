/**
 * Where each part of the timeline lives (DESIGN.md beside this file): the period of a time, the
 * slice of a pk, and the name of every collection and document id, derived from (pk, period) so
 * that reads are finds by exact `_id`. The layout's parameters are stored once per database (the
 * first node writes them); a node whose settings disagree refuses to start rather than mix layouts.
 */
import type { Db } from 'mongodb';
import { insertOnce } from '../../shared/mongo-errors.js';
import { collectionNames, type LayoutDoc } from './documents.js';

export const DAY_MS = 86_400_000;
/** Buckets per rollup: a UTC day with one-hour buckets. */
export const BUCKETS_PER_ROLLUP = 24;
/** At most this many pks in one slice: a checkpoint stays near 1 MB. */
export const MAX_SLICE_PKS = 16_384;

export interface LayoutSettings {
  intervalMs: number;
  bucketMs: number;
  pkMin: number;
  pkMax: number;
}

/** Why `BUCKET_MS` (and `INTERVAL_MS` with it) must be what they are; null when fine. */
export function bucketProblem(intervalMs: number, bucketMs: number): string | null {
  if (bucketMs % intervalMs !== 0) return `a multiple of INTERVAL_MS (${intervalMs})`;
  if (DAY_MS % bucketMs !== 0) return 'a divisor of a day (86400000): 3600000, 1800000, 600000, ...';
  if (bucketMs / intervalMs > 65_535) return `at most 65535 intervals of INTERVAL_MS (${intervalMs})`;
  return null;
}

/**
 * At least this many slices: they are also the unit Redis is sharded by (DESIGN.md, "keys per
 * slice"), and 16 spread over 3 masters of a Redis Cluster as 5, 5 and 6.
 */
export const MIN_SLICES = 16;

/** The smallest power of two, and at least MIN_SLICES, that keeps a slice at or under MAX_SLICE_PKS pks. */
export function sliceCount(pks: number): number {
  let s = MIN_SLICES;
  while (Math.ceil(pks / s) > MAX_SLICE_PKS) s *= 2;
  return s;
}

export class StorageLayout {
  readonly rollupMs: number;

  constructor(
    readonly intervalMs: number,
    readonly bucketMs: number,
    readonly slices: number,
    readonly firstPeriod: number,
    readonly convertedFrom: number | null = null,
  ) {
    this.rollupMs = bucketMs * BUCKETS_PER_ROLLUP;
  }

  period(at: number): number {
    return Math.floor(at / this.bucketMs) * this.bucketMs;
  }

  rollup(at: number): number {
    return Math.floor(at / this.rollupMs) * this.rollupMs;
  }

  slice(pk: number): number {
    return pk % this.slices;
  }

  /** Every period start in [from, to). */
  periods(from: number, to: number): number[] {
    const out: number[] = [];
    for (let p = this.period(from); p < to; p += this.bucketMs) out.push(p);
    return out;
  }
}

/** A database whose stored layout differs from this node's settings: a configuration error (exit 2). */
export class LayoutMismatch extends Error {
  readonly exitCode = 2;
}

export interface LoadOptions {
  /**
   * Records this process's INTERVAL_MS in a stored layout that lacks it (written by a version that
   * did not store it): only a node does, the value it polls at; a reader takes the setting as it is.
   */
  recordInterval?: boolean;
}

/**
 * The database's layout: created from these settings by the first node, read by the others.
 * Throws LayoutMismatch if the stored bucket length or interval differs from BUCKET_MS or INTERVAL_MS:
 * a pk polled at another interval by the node it moves to would change its rate and its buckets' shape.
 */
export async function loadLayout(
  db: Db,
  s: LayoutSettings,
  now = Date.now(),
  opts: LoadOptions = {},
): Promise<StorageLayout> {
  const meta = db.collection<LayoutDoc>(collectionNames.meta);
  const fresh: LayoutDoc = {
    _id: 'layout',
    format: 2,
    intervalMs: s.intervalMs,
    bucketMs: s.bucketMs,
    slices: sliceCount(s.pkMax - s.pkMin + 1),
    firstPeriod: Math.floor(now / s.bucketMs) * s.bucketMs,
  };
  await insertOnce(meta, fresh);
  let doc = await meta.findOne({ _id: 'layout' });
  if (doc && doc.intervalMs === undefined && opts.recordInterval) {
    // the first node of this version records its interval; of two at once, the other sees it and compares
    await meta.updateOne({ _id: 'layout', intervalMs: { $exists: false } }, { $set: { intervalMs: s.intervalMs } });
    doc = await meta.findOne({ _id: 'layout' });
  }
  const unreadable = (): Error =>
    new Error(`the stored layout in ${db.databaseName}.meta is unreadable: ${JSON.stringify(doc)}`);
  if (
    !doc ||
    doc.format !== 2 ||
    !Number.isInteger(doc.bucketMs) ||
    !Number.isInteger(doc.slices) ||
    doc.slices < 1 ||
    !Number.isInteger(doc.firstPeriod) ||
    (doc.intervalMs !== undefined && !(Number.isInteger(doc.intervalMs) && doc.intervalMs > 0))
  ) {
    throw unreadable();
  }
  if (doc.bucketMs !== s.bucketMs) {
    const differs = `BUCKET_MS=${s.bucketMs} differs from the ${doc.bucketMs} this database was written with`;
    throw new LayoutMismatch(`${differs}: use BUCKET_MS=${doc.bucketMs}`);
  }
  if (doc.intervalMs !== undefined && doc.intervalMs !== s.intervalMs) {
    const differs = `INTERVAL_MS=${s.intervalMs} differs from the ${doc.intervalMs} this cluster's data was written with`;
    throw new LayoutMismatch(`${differs}: use INTERVAL_MS=${doc.intervalMs}`);
  }
  return new StorageLayout(s.intervalMs, doc.bucketMs, doc.slices, doc.firstPeriod, doc.convertedFrom ?? null);
}
