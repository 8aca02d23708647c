import type { Config } from '../../ops/config.js';
import { createLogger } from '../../shared/log.js';
import { createMongo } from '../../shared/mongo.js';
import { reached } from '../reach.js';
import { loadLayout } from '../../storage/format/layout.js';
import { migrateLegacy } from '../../storage/jobs/migrate.js';
import { collectionNames } from '../../storage/format/documents.js';

/**
 * `influencer-node migrate`: converts the timeline of the previous layout (one document per sample)
 * into buckets, rollups and a base for the totals. Resumable and idempotent; progress on stdout.
 */
export async function migrateCommand(config: Config, opts: Record<string, unknown>): Promise<number> {
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'migrate');
  const out = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  const client = createMongo(config.mongoUrl);
  try {
    if (!(await reached('MongoDB', config.mongoUrl, () => client.connect()))) return 1;
    const db = client.db(config.mongoDb);
    const legacy = await db.listCollections({ name: collectionNames.legacyTimeline }, { nameOnly: true }).toArray();
    if (legacy.length === 0) {
      out(`nothing to migrate: ${config.mongoDb} has no "${collectionNames.legacyTimeline}" collection`);
      return 0;
    }
    const layout = await loadLayout(db, config);
    out(
      `migrating ${config.mongoDb}.${collectionNames.legacyTimeline} (one document per sample) to buckets of ${layout.bucketMs} ms`,
    );
    const r = await migrateLegacy(db, layout, log, out);
    if (r.alreadyDone) {
      out(`already migrated (${r.points.toLocaleString('en-US')} points); nothing to do`);
    } else {
      const n = (x: number): string => x.toLocaleString('en-US');
      const resumed = r.resumedFrom ? ` (resumed after ${r.resumedFrom})` : '';
      out(`done: ${n(r.points)} points of ${n(r.pks)} pks in ${n(r.buckets)} buckets${resumed}`);
      if (r.logged > 0) out(`  ${n(r.logged)} points of the layout's first periods logged into them`);
      if (r.unreadable > 0) out(`  ${n(r.unreadable)} documents that hold no point left alone`);
    }
    if (opts.drop) {
      await db.dropCollection(collectionNames.legacyTimeline);
      out(`dropped ${config.mongoDb}.${collectionNames.legacyTimeline}`);
    } else {
      out(
        `${config.mongoDb}.${collectionNames.legacyTimeline} is no longer read; drop it with \`influencer-node migrate --drop\``,
      );
    }
    return 0;
  } finally {
    await client.close().catch(() => undefined);
  }
}
