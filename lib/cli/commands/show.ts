import { UsageError } from '../flags.js';
import { EXIT } from '../exit.js';
import type { Config } from '../../ops/config.js';
import { reached } from '../reach.js';
import { createOneShotRedis, describeTarget, redisTarget } from '../../shared/redis.js';
import { createMongo } from '../../shared/mongo.js';
import { Totals } from '../../storage/state/totals.js';
import { readInfluencer, type InfluencerView, type TimelinePoint } from '../../read/influencer.js';
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

/**
 * `influencer-node show <pk>`: exit 0 with its figures and timeline; 1 when the cluster does not track
 * the pk (outside PK_MIN..PK_MAX) or a server is unreachable; 2 when it is not a pk; 3 when it is
 * tracked but has no sample stored yet (try again later).
 */
export async function showCommand(config: Config, opts: Record<string, unknown>, args: string[]): Promise<number> {
  const parsed = parsePk(args[0], config.pkMin, config.pkMax);
  if ('error' in parsed) {
    if (!/^\d{1,16}$/.test(args[0] ?? '')) throw new UsageError(parsed.error);
    const why = `not tracked by cluster ${config.cluster} (PK_MIN..PK_MAX is ${config.pkMin}..${config.pkMax})`;
    return notShown(Number(args[0]), 'not_found', why, EXIT.failure, Boolean(opts.json));
  }
  const { pk } = parsed;
  const to = opts.to === undefined ? Date.now() : timeFlag('to', opts.to);
  const from = opts.from === undefined ? to - 3_600_000 : timeFlag('from', opts.from);
  if (from > to)
    throw new UsageError(`--from is after --to: ${new Date(from).toISOString()} > ${new Date(to).toISOString()}`);
  const client = createMongo(config.mongoUrl);
  const target = redisTarget(config);
  const redis = createOneShotRedis(target);
  try {
    if (!(await reached('MongoDB', config.mongoUrl, () => client.connect()))) return 1;
    if (!(await reached('Redis', describeTarget(target), () => redis.connect(), redis.cause))) return 1;
    const db = client.db(config.mongoDb);
    const layout = await loadLayout(db, config);
    const reader = new TimelineReader(redis, db, layout, config.cluster);
    const view = await readInfluencer(reader, new Totals(redis, config.cluster, layout.slices), pk, from, to);
    if (!view) {
      const why = 'no data yet: no node has stored a sample for it';
      return notShown(pk, 'no_data', why, EXIT.noData, Boolean(opts.json));
    }
    process.stdout.write(opts.json ? `${JSON.stringify(view, null, 2)}\n` : renderInfluencer(view));
    return EXIT.ok;
  } finally {
    redis.disconnect();
    await client.close().catch(() => undefined);
  }
}

/** A pk show cannot show: the reason on stderr (or as JSON on stdout with --json), and its exit code. */
function notShown(pk: number, reason: 'not_found' | 'no_data', why: string, code: number, json: boolean): number {
  if (json) process.stdout.write(`${JSON.stringify({ pk, found: false, reason, message: why })}\n`);
  else process.stderr.write(`influencer-node: pk ${pk}: ${why}\n`);
  return code;
}

function bucketFigures(b: TimelinePoint): string {
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
      const bucket = v.resolution === 'bucket' ? bucketFigures(p) : '';
      return `  ${p.at}  ${counts}  ${p.followerRatio ?? '-'}${bucket}`;
    }),
    '',
  ];
  return lines.join('\n');
}
