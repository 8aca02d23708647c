// The cluster as read from Redis (like dskit's ReadRing): every member's card, and the active
// members this process puts on its ring. Writing this process's own card is membership.ts's job.
import { EventEmitter } from 'node:events';
import { scanKeys, type RedisClient } from '../shared/redis.js';
import {
  activeMembers,
  isLive,
  parseCard,
  viewHash,
  type MemberCard,
  type ParsedCard,
  type RingMember,
} from './card.js';
import { eventsChannel, memberIndexKey, nodeKey } from '../shared/keys.js';
import type { Logger } from '../shared/log.js';
import { PeriodicJob } from '../shared/services.js';

/**
 * Reads the member cards. `index` (what nodes do every second): the ids in the member index, one
 * SMEMBERS and one MGET whatever else Redis holds; ids whose key expired are pruned from it.
 * `scan` (status): every `<cluster>:node:*` key, so garbage written there is shown too.
 * Garbage values come back as unreadable entries.
 */
export async function readMembers(
  redis: RedisClient,
  cluster: string,
  mode: 'index' | 'scan' = 'scan',
): Promise<ParsedCard[]> {
  const prefix = nodeKey(cluster, '');
  let ids: string[];
  if (mode === 'index') {
    ids = await redis.smembers(memberIndexKey(cluster));
  } else {
    const keys: string[] = [];
    for await (const batch of scanKeys(redis, `${escapeGlob(prefix)}*`)) keys.push(...batch);
    ids = keys.map((k) => k.slice(prefix.length));
  }
  if (ids.length === 0) return [];
  const unique = [...new Set(ids)].sort();
  // one GET and one PTTL each: on a Redis Cluster the cards live in different slots (one connection
  // pipelines them); a key of another type answers WRONGTYPE: no card, as MGET said before
  const [values, ttls] = await Promise.all([
    Promise.all(
      unique.map((id) =>
        redis.get(prefix + id).catch((err: Error) => (/^WRONGTYPE/.test(err.message) ? null : Promise.reject(err))),
      ),
    ),
    Promise.all(unique.map((id) => redis.pttl(prefix + id))),
  ]);
  const gone = unique.filter((_, i) => values[i] === null);
  // a member that re-announces between the MGET and the SREM adds itself again at its next heartbeat
  if (mode === 'index' && gone.length > 0) await redis.srem(memberIndexKey(cluster), ...gone);
  return unique
    .map((id, i): ParsedCard => {
      const parsed = parseCard(id, values[i]);
      return parsed.ok ? { ...parsed, ttlLeftMs: ttls[i] } : parsed;
    })
    .filter((p) => p.ok || p.error !== 'key vanished');
}

/** The readable cards of the live members (Redis has not expired their keys: card.ts `isLive`), from the index. */
export async function liveCards(redis: RedisClient, cluster: string): Promise<MemberCard[]> {
  return (await readMembers(redis, cluster, 'index')).flatMap((c) => (isLive(c) ? [c.card] : []));
}

/**
 * Whether every live member's card says all its samples of intervals before `end` are in the log
 * (a card without the figure, or a member whose key Redis has expired, does not hold it up).
 */
export async function everyMemberLogged(redis: RedisClient, cluster: string, end: number): Promise<boolean> {
  for (const card of await liveCards(redis, cluster)) {
    const through = card.stats.loggedThrough;
    if (typeof through === 'number' && through < end) return false;
  }
  return true;
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

export interface MemberViewOptions {
  cluster: string;
  /** this process: on the ring while `selfActive()`, whatever its card in Redis says */
  self: RingMember;
  selfActive: () => boolean;
  ttlMs: number;
}

/**
 * The active members as this process sees them: the member keys rescanned every second (pub/sub
 * loses messages while a connection is down) and at once on an event of `<cluster>:events`. Emits
 * `members` whenever the active set changes; while Redis is unreachable it keeps its last view.
 */
export class MemberView extends EventEmitter<{ members: [RingMember[]] }> {
  private members: RingMember[] = [];
  private lastCards: ParsedCard[] = [];
  /** the rescan every second, brought forward by an event */
  private readonly scans: PeriodicJob<void>;
  private closed = false;
  /** the last error of a members update, logged once while it repeats */
  private updateError?: string;

  constructor(
    private readonly redis: RedisClient,
    private readonly sub: RedisClient,
    private readonly opts: MemberViewOptions,
    private readonly log: Logger,
  ) {
    super();
    const everyMs = Math.min(1000, Math.floor(opts.ttlMs / 3));
    const failure = 'scanning the member cards failed';
    this.scans = new PeriodicJob(() => this.scan(), { log, failure, everyMs, firstAfterMs: everyMs });
  }

  get ringMembers(): RingMember[] {
    return this.members;
  }
  /** the cards seen by the last scan */
  get cards(): ParsedCard[] {
    return this.lastCards;
  }

  /**
   * Rescans every second (a third of the TTL if shorter) until stopped, at once on an event of the
   * cluster, and whenever the subscriber reconnects.
   */
  async listen(): Promise<void> {
    this.scans.start();
    const channel = eventsChannel(this.opts.cluster);
    this.sub.on('message', (from: string) => {
      if (from === channel) this.requestScan();
    });
    await this.sub.subscribe(channel);
    this.sub.on('ready', () => this.requestScan());
  }

  /** A scan in 20 ms, once however many ask meanwhile. */
  requestScan(): void {
    this.scans.runSoon(20);
  }

  /** Reads every member card and emits `members` when the active set changed; never rejects. */
  async scan(): Promise<void> {
    if (this.closed) return;
    let cards: ParsedCard[];
    try {
      cards = await readMembers(this.redis, this.opts.cluster, 'index');
    } catch {
      return; // Redis down: keep the last view
    }
    const before = this.members;
    try {
      this.update(cards);
      this.updateError = undefined;
    } catch (err) {
      // called from timers: a listener's error is logged (once) here, never left to reject into the void
      this.members = before; // so the next scan tries again
      const message = (err as Error).message;
      if (message !== this.updateError)
        this.log.error({ err: message }, 'members update failed; keeping the last view');
      this.updateError = message;
    }
  }

  /** Stops scanning and drops the listeners; the subscription is left to `unsubscribe()`. */
  async stop(): Promise<void> {
    this.closed = true;
    this.removeAllListeners('members');
    await this.scans.stop();
  }

  async unsubscribe(): Promise<void> {
    await this.sub.unsubscribe().catch(() => undefined);
  }

  private update(cards: ParsedCard[]): void {
    this.lastCards = cards;
    const { self } = this.opts;
    const active = activeMembers(cards).filter((m) => m.id !== self.id);
    if (this.opts.selfActive()) active.push({ id: self.id, weight: self.weight });
    active.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (viewHash(active) === viewHash(this.members) && active.length === this.members.length) return;
    const before = new Set(this.members.map((m) => m.id));
    const after = new Set(active.map((m) => m.id));
    this.members = active;
    this.log.info(
      {
        members: active.length,
        joined: [...after].filter((id) => !before.has(id)),
        left: [...before].filter((id) => !after.has(id)),
      },
      'ring members changed',
    );
    this.emit('members', active);
  }
}
