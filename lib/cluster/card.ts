import { createHash } from 'node:crypto';
import { NAME_PATTERN } from '../shared/keys.js';
import { memberProblem, type RingMember } from '../ring/ring.js';

export type { RingMember };

/** Lifecycle of a member: only `active` members are on the ring. */
export type MemberState = 'joining' | 'active' | 'leaving';
export const MEMBER_STATES: readonly MemberState[] = ['joining', 'active', 'leaving'];

/** Version of the card format; a card of another version is shown as unreadable. */
export const CARD_FORMAT = 1;

/** The JSON a node keeps at `<cluster>:node:<id>` (TTL = HEARTBEAT_TTL_MS). */
export interface MemberCard {
  format: typeof CARD_FORMAT;
  id: string;
  host: string;
  pid: number;
  version: string;
  weight: number;
  state: MemberState;
  /** epoch ms */
  started: number;
  /** epoch ms of the last refresh */
  heartbeat: number;
  ttlMs: number;
  /** hash of the member set this node has built its ring from */
  view: string;
  /** random per process: a node refreshes or deletes only a card that holds its own token */
  token?: string;
  /** the host's boot id and the systemd unit: a restarted node recognises a card its previous run left */
  boot?: string;
  unit?: string;
  /** the Redis key layout this member writes (2: per slice); missing on a member of an older version */
  keyspace?: number;
  stats: Record<string, unknown>;
}

/**
 * A member key's value, parsed; `ttlLeftMs` is the key's PTTL when it was read (readMembers): -1 a key
 * without a TTL, -2 gone meanwhile.
 */
export type ParsedCard = { ok: true; card: MemberCard; ttlLeftMs?: number } | { ok: false; id: string; error: string };

/**
 * Parses a member key's value; garbage (not JSON, an old or unknown format, an id or weight outside
 * the NODE_ID and NODE_WEIGHT settings' bounds, which the ring refuses) is an error, never a throw.
 */
export function parseCard(id: string, raw: string | null): ParsedCard {
  if (raw === null) return { ok: false, id, error: 'key vanished' };
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return { ok: false, id, error: 'not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, id, error: 'not a JSON object' };
  const c = v as Record<string, unknown>;
  if (c.format !== CARD_FORMAT)
    return { ok: false, id, error: `unknown card format ${JSON.stringify(c.format ?? null)}` };
  const missing: string[] = (['id', 'host', 'version', 'view'] as string[])
    .filter((k) => typeof c[k] !== 'string')
    .concat(
      (['pid', 'weight', 'started', 'heartbeat', 'ttlMs'] as string[]).filter(
        (k) => typeof c[k] !== 'number' || !Number.isFinite(c[k]),
      ),
    );
  if (missing.length) return { ok: false, id, error: `bad or missing ${missing.join(', ')}` };
  if (!MEMBER_STATES.includes(c.state as MemberState))
    return { ok: false, id, error: `unknown state ${JSON.stringify(c.state)}` };
  if (c.id !== id) return { ok: false, id, error: `card names another id ${JSON.stringify(c.id)}` };
  if (!NAME_PATTERN.test(id)) return { ok: false, id, error: 'id is not a valid NODE_ID' };
  const refused = memberProblem({ id, weight: c.weight });
  if (refused !== undefined) return { ok: false, id, error: refused };
  const stats =
    typeof c.stats === 'object' && c.stats !== null && !Array.isArray(c.stats)
      ? (c.stats as Record<string, unknown>)
      : {};
  return { ok: true, card: { ...(c as unknown as MemberCard), stats } };
}

/** The members that belong on the ring: readable cards in state active, as {id, weight}. */
export function activeMembers(cards: readonly ParsedCard[]): RingMember[] {
  return cards.flatMap((c) => (c.ok && c.card.state === 'active' ? [{ id: c.card.id, weight: c.card.weight }] : []));
}

/**
 * Whether the member is alive: Redis has not expired its key yet (the PTTL read with the card). Redis's
 * own clock decides, never the card's heartbeat time against this process's clock: two hosts' clocks
 * a TTL apart would judge a live member dead. A key without a TTL is no member's (each heartbeat sets one).
 */
export function isLive(c: ParsedCard): c is ParsedCard & { ok: true } {
  return c.ok && c.ttlLeftMs !== undefined && c.ttlLeftMs > 0;
}

/** Healthy = active and alive. */
export function isHealthy(c: ParsedCard): boolean {
  return isLive(c) && c.card.state === 'active';
}

/** ms since the card was last refreshed, by Redis's clock (its TTL minus the time left); null if not alive. */
export function heartbeatAgeMs(c: ParsedCard): number | null {
  return isLive(c) ? Math.max(0, c.card.ttlMs - c.ttlLeftMs!) : null;
}

/** Short, order-independent hash of a member set: equal on every node that sees the same set. */
export function viewHash(members: readonly RingMember[]): string {
  const text = members
    .map((m) => `${m.id}:${m.weight}`)
    .sort()
    .join(',');
  return createHash('sha1').update(text).digest('hex').slice(0, 8);
}
