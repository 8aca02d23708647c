// The one place that knows MongoDB's duplicate-key error: every insert of the storage is an insert of
// a document derived from what it holds, so a duplicate means "stored already" and is not an error.
import { MongoBulkWriteError, MongoServerError, type Collection } from 'mongodb';

/** MongoDB's (and FerretDB's) code for an insert whose `_id` is taken. */
export const DUPLICATE_KEY = 11000;

/** Whether `err` is a duplicate-key error: the document (or one with its `_id`) is stored already. */
export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/** Inserts one document; resolves false when its `_id` is taken (an earlier attempt or another node wrote it). */
export async function insertOnce<T extends { _id: unknown }>(col: Collection<T>, doc: T): Promise<boolean> {
  try {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    await col.insertOne(doc as any);
    return true;
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    return false;
  }
}

/**
 * Inserts unordered and ignores duplicate keys (a document another attempt or node wrote); any
 * other error is thrown, so the caller retries the whole call. Does not rely on the server carrying
 * on after a write error: what followed the first error is inserted again.
 */
export async function insertIgnoringDuplicates<T extends { _id: unknown }>(
  col: Collection<T>,
  docs: T[],
): Promise<number> {
  let pending = docs;
  let duplicates = 0;
  while (pending.length > 0) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
      await col.insertMany(pending as any, { ordered: false });
      break;
    } catch (err) {
      if (!(err instanceof MongoBulkWriteError)) throw err;
      const errors = [err.writeErrors].flat();
      if (errors.length === 0 || errors.some((e) => e.code !== DUPLICATE_KEY)) throw err;
      duplicates += errors.length;
      const errored = new Set(errors.map((e) => e.index));
      if ((err.result?.insertedCount ?? 0) + errored.size >= pending.length) break;
      const first = Math.min(...errored);
      pending = pending.filter((_, i) => i > first && !errored.has(i));
    }
  }
  return duplicates;
}
