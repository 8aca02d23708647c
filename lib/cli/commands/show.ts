import { UsageError } from './flags.js';
import type { Config } from '../../ops/config.js';
import { reached } from './reach.js';
import { createOneShotRedis } from '../../shared/redis.js';
import { createMongo } from '../../shared/mongo.js';
import { Totals } from '../../storage/state/totals.js';
import { readInfluencer, type BucketPoint, type InfluencerView } from '../../read/influencer.js';
import { loadLayout } from '../../storage/format/layout.js';
import { TimelineReader } from '../../storage/read/reader.js';
import { parseTime } from '../../shared/util.js';
import { parsePk } from '../../ring/pk-universe.js';

/** A time flag: an ISO time or epoch milliseconds, else a usage error naming it. */
function timeFlag(flag: string, raw: unknown): number {
  try {
    return parseTime(String(raw));
  } catch (err) {
    throw new UsageError(`--${flag}=${JSON.stringify(raw)} is not valid: ${(err as Error).message}`);
  }
}

export async function showCommand(config: Config, opts: Record<string, unknown>, args: string[]): Promise<number> {
  const parsed = parsePk(args[0], config.pkMin, config.pkMax);
  if ('error' in parsed) throw new UsageError(parsed.error);
  const { pk } = parsed;
  const to = opts.to === undefined ? Date.now() : timeFlag('to', opts.to);
  const from = opts.from === undefined ? to - 3_600_000 : timeFlag('from', opts.from);
  if (from > to)
    throw new UsageError(`--from is after --to: ${new Date(from).toISOString()} > ${new Date(to).toISOString()}`);
  const client = createMongo(config.mongoUrl);
  const redis = createOneShotRedis(config.redisUrl);
  try {
    if (!(await reached('MongoDB', config.mongoUrl, () => client.connect()))) return 1;
    if (!(await reached('Redis', config.redisUrl, () => redis.connect(), redis.cause))) return 1;
    const db = client.db(config.mongoDb);
    const layout = await loadLayout(db, config);
    const reader = new TimelineReader(redis, db, layout, config.cluster);
    const view = await readInfluencer(reader, new Totals(redis, config.cluster, layout.slices), pk, from, to);
    if (!view) {
      if (opts.json) process.stdout.write(`${JSON.stringify({ pk, found: false })}\n`);
      else process.stdout.write(`pk ${pk}: no data yet (no node has stored a sample for it)\n`);
      return 0;
    }
    process.stdout.write(opts.json ? `${JSON.stringify(view, null, 2)}\n` : renderInfluencer(view));
    return 0;
  } finally {
    redis.disconnect();
    await client.close().catch(() => undefined);
  }
}

function bucketFigures(p: object): string {
  if (!('samples' in p)) return '';
  const b = p as BucketPoint;
  return `  min ${b.minFollowers}  max ${b.maxFollowers}  mean ${b.meanFollowers}  (${b.samples} samples)`;
}

export function renderInfluencer(v: InfluencerView): string {
  const lines = [
    `${v.username} (pk ${v.pk})  last updated ${v.lastUpdated}` +
      (v.suspicious === null ? '' : `  suspicious: ${v.suspicious ? 'yes' : 'no'}`),
    `followers ${v.followerCount}  following ${v.followingCount}  ratio ${v.followerRatio ?? '-'}`,
    `average ${v.averageFollowers}  min ${v.minFollowers}  max ${v.maxFollowers}  over ${v.samples} samples  rank ${v.rank ?? '-'}`,
    '',
    `timeline ${v.range.from} .. ${v.range.to}: ${v.points.length} points` +
      (v.resolution === 'bucket' ? ' (one per bucket: last, min, max, mean followers)' : ''),
    ...v.points.map((p) => {
      const counts = `${String(p.followerCount).padStart(9)}  ${String(p.followingCount).padStart(7)}`;
      return `  ${p.at}  ${counts}  ${p.followerRatio ?? '-'}${bucketFigures(p)}`;
    }),
    '',
  ];
  return lines.join('\n');
}
