// Log documents that no node can apply (a damaged payload, a format this version does not read, a
// script that fails on them) are set aside instead of failing their period's reconcile, and with it
// every later close, for ever: a copy is kept in MongoDB's `quarantine` (past the log's retention),
// and Redis lists them for `status` and the metrics. The rest of the period closes without them.
import { Binary, type Db } from 'mongodb';
import type { RedisClient } from '../../shared/redis.js';
import type { Logger } from '../../shared/log.js';
import { listQuarantined } from '../../cluster/quarantine-list.js';
import { insertOnce } from '../../shared/mongo-errors.js';
import { CorruptData } from '../format/bytes.js';
import type { LogDoc } from '../format/documents.js';

/** MongoDB's copy of a quarantined document: the log document as it was, with why and when. */
export interface QuarantineDoc {
  /** `<period>:<token>` */
  _id: string;
  p: number;
  t: string;
  n?: unknown;
  c?: unknown;
  b?: Binary;
  reason: string;
  at: Date;
}

export const QUARANTINE_COLLECTION = 'quarantine';

/**
 * Why the document itself cannot be applied, or null when the error is the servers' (a connection,
 * a failover, Redis out of memory or busy): those are retried, never quarantined.
 */
export function cannotApply(err: unknown): string | null {
  if (err instanceof CorruptData) return `unreadable payload: ${err.message}`;
  // the call could not be built from it (more arguments than a call takes)
  if (err instanceof RangeError) return `${err.name}: ${err.message}`;
  const message = err instanceof Error ? err.message : '';
  // a Lua runtime error in the script (Redis 7: "user_script:N: ...", earlier: "Error running script")
  if (/user_script|Error running script/.test(message)) return `the apply script failed: ${message}`;
  return null;
}

/** A log document's payload; CorruptData when it has none (a document some other program wrote). */
export function payloadOf(doc: LogDoc): Uint8Array {
  if (!(doc.b instanceof Binary)) throw new CorruptData('a log document without a binary payload');
  return doc.b.buffer;
}

/** Sets a log document aside: copied into `quarantine` (once), listed in Redis, logged once. */
export async function quarantine(
  redis: RedisClient,
  db: Db,
  cluster: string,
  period: number,
  doc: LogDoc,
  reason: string,
  log: Logger,
): Promise<void> {
  const token = String(doc._id);
  const copy: QuarantineDoc = {
    _id: `${period}:${token}`,
    p: period,
    t: token,
    n: doc.n,
    c: doc.c,
    b: doc.b,
    reason,
    at: new Date(),
  };
  const first = await insertOnce(db.collection<QuarantineDoc>(QUARANTINE_COLLECTION), copy);
  await listQuarantined(redis, cluster, token, period, reason, copy.at.getTime());
  if (first)
    log.error(
      { period: new Date(period).toISOString(), token, reason },
      `a log document that cannot be applied is quarantined (kept in MongoDB's ${QUARANTINE_COLLECTION}); the period closes without it`,
    );
}
