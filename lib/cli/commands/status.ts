import { createOneShotRedis, describeTarget, redisTarget } from '../../shared/redis.js';
import { numberFlag, UsageError } from '../flags.js';
import type { Config } from '../../ops/config.js';
import { reached } from '../reach.js';
import { ownerOfPk, readStatus, type ClusterStatus, type MemberRow } from '../../cluster/status.js';
import { sleep } from '../../shared/util.js';
import { escapesAllowed } from '../../shared/terminal.js';

export async function statusCommand(config: Config, opts: Record<string, unknown>): Promise<number> {
  const pk = opts.pk === undefined ? undefined : numberFlag('pk', opts.pk, 0, Number.MAX_SAFE_INTEGER, true);
  if (pk !== undefined && (pk < config.pkMin || pk > config.pkMax)) {
    throw new UsageError(`--pk=${pk} is outside the pk universe ${config.pkMin}..${config.pkMax}`);
  }
  const target = redisTarget(config);
  const redis = createOneShotRedis(target);
  try {
    if (!(await reached('Redis', describeTarget(target), () => redis.connect(), redis.cause))) return 1;
    if (pk !== undefined) {
      const owner = await ownerOfPk(redis, config, pk);
      if (opts.json) process.stdout.write(`${JSON.stringify(owner, null, 2)}\n`);
      else if (!owner.owner) process.stdout.write(`pk ${pk}: no active members in cluster ${config.cluster}\n`);
      else {
        const point = `first ring point at or after it: #${owner.pointIndex} (${owner.point})`;
        const how = `md5 hash ${owner.hash} → ${point}, owned by ${owner.owner}; ${owner.members} active members`;
        process.stdout.write(`pk ${pk} → ${owner.owner}\n  ${how}\n`);
      }
      return 0;
    }
    if (!opts.watch) {
      const status = await readStatus(redis, config);
      process.stdout.write(opts.json ? `${JSON.stringify(status, null, 2)}\n` : renderStatus(status));
      return 0;
    }
    let stop = false;
    process.once('SIGINT', () => {
      stop = true;
    });
    process.once('SIGTERM', () => {
      stop = true;
    });
    // NDJSON for --json; the screen cleared only on a terminal (and not with NO_COLOR), else one view after another
    const clear = !opts.json && escapesAllowed(process.stdout) ? '\x1b[H\x1b[2J' : '';
    for (let first = true; !stop; first = false) {
      const status = await readStatus(redis, config);
      if (opts.json) process.stdout.write(`${JSON.stringify(status)}\n`);
      else process.stdout.write(`${clear || (first ? '' : '\n')}${renderStatus(status)}`);
      await sleep(1000);
    }
    return 0;
  } finally {
    // on a closed connection ioredis' disconnect() arms a 2 s timer that only a socket close clears
    if (redis.status !== 'end') redis.disconnect();
  }
}

const num = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? String(v) : '-');
const pct = (v: unknown): string =>
  typeof v === 'number' && Number.isFinite(v) ? `${v.toFixed(v >= 99.95 && v < 100 ? 2 : 1)}%` : '-';

/** The human view of `status`: one row per member, then a summary. */
export function renderStatus(s: ClusterStatus): string {
  if (s.members.length === 0)
    return `cluster ${s.cluster}: no members (no node is running, or CLUSTER names another cluster)\n${quarantineLines(s)}`;
  const header = [
    'ID',
    'HOST',
    'PID',
    'VERSION',
    'STATE',
    'UPTIME',
    'HEARTBEAT',
    'WEIGHT',
    'SHARE',
    'OWNED',
    'SAMPLES',
    'ON-TIME',
    'MISSED',
    'QUEUE',
  ];
  const rows = s.members.map((m: MemberRow) =>
    (m.readable
      ? [
          m.id,
          m.host,
          num(m.pid),
          m.version,
          m.healthy ? m.state : `${m.state} (stale)`,
          duration(m.uptimeS ?? 0),
          m.heartbeatAgeS === undefined ? '-' : `${m.heartbeatAgeS}s ago`,
          num(m.weight),
          pct(m.sharePct),
          num(m.stats?.owned),
          num(m.stats?.samplesLastInterval),
          pct(m.stats?.onTimePct),
          num(m.stats?.missed),
          num(m.stats?.writeQueue),
        ]
      : [m.id, '-', '-', '-', `unreadable: ${m.error}`, '-', '-', '-', '-', '-', '-', '-', '-', '-']
    ).map((c) => String(c ?? '-')),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const sum = s.summary;
  return [
    `cluster ${s.cluster}  pks ${s.universe.pkMin}..${s.universe.pkMax} (${s.universe.size})  at ${s.at}`,
    '',
    line(header),
    ...rows.map(line),
    '',
    `members ${sum.members} (${sum.active} active)  balance ${sum.balance ?? '-'} (max/mean owned)  ring view ${sum.ringView} ` +
      (sum.viewsAgree ? '(all agree)' : '(members DISAGREE: a change is propagating)'),
    `unhealthy: ${sum.unhealthy.length ? sum.unhealthy.join(', ') : 'none'}` +
      (sum.unreadable.length ? `  unreadable: ${sum.unreadable.join(', ')}` : '') +
      (sum.offRing.length ? `  off the ring (full): ${sum.offRing.join(', ')}` : ''),
    quarantineLines(s),
  ].join('\n');
}

/** The quarantined log documents, the five oldest named; nothing when there are none. */
function quarantineLines(s: ClusterStatus): string {
  const q = s.quarantined ?? [];
  if (q.length === 0) return '';
  const shown = q.slice(0, 5).map((e) => {
    const period = Number.isFinite(e.period) ? new Date(e.period).toISOString() : '?';
    return `  ${e.token} (period ${period}): ${e.reason}`;
  });
  const more = q.length > shown.length ? [`  … and ${q.length - shown.length} more`] : [];
  const head = `quarantined log documents: ${q.length} (kept in MongoDB's quarantine; their periods closed without them)`;
  return [head, ...shown, ...more, ''].join('\n');
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;
  return `${Math.floor(seconds / 86400)}d${Math.floor((seconds % 86400) / 3600)}h`;
}
