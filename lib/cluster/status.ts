import type { RedisClient } from '../shared/redis.js';
import { activeMembers, heartbeatAgeMs, isHealthy, viewHash, type ParsedCard } from './card.js';
import { readMembers } from './member-view.js';
import { Ring } from '../ring/ring.js';
import { lowerBound } from '../shared/util.js';
import { quarantined, type QuarantinedEntry } from './quarantine-list.js';

export interface MemberRow {
  id: string;
  readable: boolean;
  error?: string;
  host?: string;
  pid?: number;
  version?: string;
  state?: string;
  uptimeS?: number;
  heartbeatAgeS?: number;
  weight?: number;
  healthy?: boolean;
  sharePct?: number;
  view?: string;
  stats?: Record<string, unknown>;
}

export interface ClusterStatus {
  cluster: string;
  at: string;
  universe: { pkMin: number; pkMax: number; size: number };
  members: MemberRow[];
  /** log documents no node can apply, set aside by a period's close (kept in MongoDB's `quarantine`) */
  quarantined: QuarantinedEntry[];
  summary: {
    members: number;
    active: number;
    unhealthy: string[];
    unreadable: string[];
    /** active members left off the ring because it was full (MAX_RING_POINTS) */
    offRing: string[];
    /** max / mean owned pks over active members (1 = perfect) */
    balance: number | null;
    /** the view hash of the active set; members that built their ring from another set disagree */
    ringView: string;
    viewsAgree: boolean;
  };
}

/** The settings a status read needs: the cluster's name and its pk universe. */
export interface StatusSettings {
  cluster: string;
  pkMin: number;
  pkMax: number;
}

/** Reads the cluster from Redis without joining it. */
export async function readStatus(
  redis: RedisClient,
  config: StatusSettings,
  now = Date.now(),
  mode: 'index' | 'scan' = 'scan',
): Promise<ClusterStatus> {
  const cards = await readMembers(redis, config.cluster, mode);
  const active = activeMembers(cards);
  const ring = new Ring(active);
  const shares = ringShares(ring);
  const members: MemberRow[] = cards.map((c) => {
    if (!c.ok) return { id: c.id, readable: false, error: c.error };
    const card = c.card;
    return {
      id: card.id,
      readable: true,
      host: card.host,
      pid: card.pid,
      version: card.version,
      state: card.state,
      uptimeS: Math.max(0, Math.round((now - card.started) / 1000)),
      // by Redis's clock (the key's TTL left), as liveness is: the hosts' clocks may differ
      ...heartbeatAge(c),
      weight: card.weight,
      healthy: isHealthy(c),
      sharePct: shares.get(card.id) ?? 0,
      view: card.view,
      stats: card.stats,
    };
  });
  const ringView = viewHash(ring.members);
  const owned = members
    .filter((m) => m.state === 'active')
    .map((m) => Number(m.stats?.owned ?? NaN))
    .filter(Number.isFinite);
  const mean = owned.reduce((a, b) => a + b, 0) / (owned.length || 1);
  return {
    cluster: config.cluster,
    at: new Date(now).toISOString(),
    universe: { pkMin: config.pkMin, pkMax: config.pkMax, size: config.pkMax - config.pkMin + 1 },
    members,
    quarantined: await quarantined(redis, config.cluster),
    summary: {
      members: members.length,
      active: active.length,
      unhealthy: members.filter((m) => m.readable && !m.healthy).map((m) => m.id),
      unreadable: members.filter((m) => !m.readable).map((m) => m.id),
      offRing: ring.left.map((m) => m.id),
      balance: owned.length && mean > 0 ? round(Math.max(...owned) / mean, 3) : null,
      ringView,
      viewsAgree: members.every((m) => !m.readable || m.state !== 'active' || m.view === ringView),
    },
  };
}

function heartbeatAge(c: ParsedCard): { heartbeatAgeS?: number } {
  const ms = heartbeatAgeMs(c);
  return ms === null ? {} : { heartbeatAgeS: Math.round(ms / 100) / 10 };
}

/** Share of the hash space (in %) each member's arcs cover: exact, no pk lookups. */
export function ringShares(ring: Ring): Map<string, number> {
  const { points, pointOwner, ids } = ring;
  const arcs = new Float64Array(ids.length);
  for (let i = 0; i < points.length; i++) {
    const prev = i === 0 ? points[points.length - 1] - 2 ** 32 : points[i - 1];
    arcs[pointOwner[i]] += points[i] - prev;
  }
  return new Map(ids.map((id, i) => [id, round((arcs[i] / 2 ** 32) * 100, 2)]));
}

export interface PkOwner {
  pk: number;
  hash: number;
  owner: string | null;
  point: number | null;
  pointIndex: number | null;
  members: number;
}

/** Which active member owns `pk`, and why: the pk's hash and the first ring point at or after it. */
export async function ownerOfPk(redis: RedisClient, config: { cluster: string }, pk: number): Promise<PkOwner> {
  const cards = await readMembers(redis, config.cluster);
  const active = activeMembers(cards);
  if (active.length === 0) return { pk, hash: 0, owner: null, point: null, pointIndex: null, members: 0 };
  const ring = new Ring(active);
  const hash = ring.hashOf(pk);
  const first = lowerBound(ring.points, hash);
  const index = first === ring.points.length ? 0 : first;
  return {
    pk,
    hash,
    owner: ring.ownerOf(pk) ?? null,
    point: ring.points[index],
    pointIndex: index,
    members: active.length,
  };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
