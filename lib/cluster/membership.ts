// This process's own member card (like dskit's lifecycler): claimed, heartbeated, its state
// published, and deleted on leave. The cluster as read from Redis is member-view.ts's job.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { RedisClient } from '../shared/redis.js';
import {
  CARD_FORMAT,
  parseCard,
  viewHash,
  type MemberCard,
  type MemberState,
  type ParsedCard,
  type RingMember,
} from './card.js';
import { MemberView, readMembers } from './member-view.js';
import { eventsChannel, KEYSPACE_LAYOUT, memberIndexKey, nodeKey } from '../shared/keys.js';
import type { Logger } from '../shared/log.js';
import { VERSION } from '../shared/version.js';
import { sleep } from '../shared/util.js';
import { PeriodicJob } from '../shared/services.js';
import { heartbeat, release } from '../lua/scripts.js';
import { staleOwnCard, thisProcess, type ProcessPlace } from './own-card.js';

export interface MembershipOptions {
  cluster: string;
  id: string;
  weight: number;
  ttlMs: number;
  /** live figures published in the card */
  stats?: () => Record<string, unknown>;
  /** the node's clock, for the card's times */
  now?: () => number;
}

/** Another live process holds this NODE_ID: the node must not start (exit 1). */
export class DuplicateNodeError extends Error {}

/**
 * This node's place in the cluster: a card under `<cluster>:node:<id>` with a TTL, refreshed every
 * TTL/3; join, leave and state changes on `<cluster>:events`. Emits `members` with the active
 * members (the ring) whenever its MemberView sees that set change, this node included while active.
 */
export class Membership extends EventEmitter<{ members: [RingMember[]] }> {
  private state: MemberState = 'joining';
  private readonly now: () => number;
  private readonly started: number;
  private readonly key: string;
  private readonly channel: string;
  private readonly members: MemberView;
  private view = viewHash([]);
  /** the card refreshed every TTL/3 */
  private readonly beats: PeriodicJob<void>;
  private closing?: Promise<void>;
  /** set once this process holds the key: never touch another process's card */
  private claimed = false;
  /** identifies this process's card: another process with the same id has another token */
  private readonly token = randomBytes(8).toString('hex');
  /** another process holds our id (we were gone past the TTL): logged once per episode */
  private displaced = false;
  /** when the heartbeat loop last ran (the node's health check reads it) */
  private lastBeat = Date.now();
  private readonly place: ProcessPlace = thisProcess();

  constructor(
    private readonly redis: RedisClient,
    sub: RedisClient,
    private readonly opts: MembershipOptions,
    private readonly log: Logger,
  ) {
    super();
    this.now = opts.now ?? Date.now;
    this.started = this.now();
    this.key = nodeKey(opts.cluster, opts.id);
    this.channel = eventsChannel(opts.cluster);
    const self = { id: opts.id, weight: opts.weight };
    const selfActive = (): boolean => this.state === 'active';
    this.members = new MemberView(redis, sub, { cluster: opts.cluster, self, selfActive, ttlMs: opts.ttlMs }, log);
    this.members.on('members', (members) => this.emit('members', members));
    const everyMs = Math.max(50, Math.floor(opts.ttlMs / 3));
    const failure = 'refreshing the member card failed';
    this.beats = new PeriodicJob(() => this.heartbeat(), { log, failure, everyMs, firstAfterMs: everyMs });
  }

  get id(): string {
    return this.opts.id;
  }
  get currentState(): MemberState {
    return this.state;
  }
  get ringMembers(): RingMember[] {
    return this.members.ringMembers;
  }
  /** the cards seen by the last scan */
  get cards(): ParsedCard[] {
    return this.members.cards;
  }

  /** ms since the heartbeat loop last ran: a stuck loop is a reason for systemd's watchdog to restart the node */
  get heartbeatAgeMs(): number {
    return Date.now() - this.lastBeat;
  }

  /**
   * Claims the id (taking over a stale card of this node's previous run, refusing any other
   * holder), subscribes, heartbeats and scans; the card says joining until `activate()`.
   */
  async start(): Promise<void> {
    if (!(await this.claim()) && !(await this.takeOverStaleCard())) await this.refuseDuplicate();
    await this.redis.sadd(memberIndexKey(this.opts.cluster), this.opts.id);
    this.claimed = true;
    await this.members.listen();
    // after a reconnect (Redis restarted) announce and look around at once
    this.redis.on('ready', () => {
      void this.heartbeat();
      this.members.requestScan();
    });
    await this.publish('join');
    this.beats.start();
    await this.members.scan();
  }

  /** Reads every member card now (`ringMembers` is then current). */
  async rescan(): Promise<void> {
    await this.members.scan();
  }

  /** On the ring: the card says active, and every member's view counts this node. */
  async activate(): Promise<void> {
    await this.setState('active');
  }

  private async claim(): Promise<boolean> {
    return (await this.redis.set(this.key, this.cardJson(), 'PX', this.opts.ttlMs, 'NX')) === 'OK';
  }

  /** The card holding this id was left by this node's previous run (same host and unit, process gone): replace it. */
  private async takeOverStaleCard(): Promise<boolean> {
    const holder = parseCard(this.opts.id, await this.redis.get(this.key));
    if (!holder.ok || !holder.card.token) return false;
    const why = staleOwnCard(holder.card, this.place);
    if (!why) return false;
    // deleted only if it still holds the stale card's token, then claimed as a new one would be
    await this.release(holder.card.token);
    if (!(await this.claim())) return false;
    const age = Math.round((Date.now() - holder.card.heartbeat) / 100) / 10;
    this.log.warn(
      { node: this.opts.id, previousPid: holder.card.pid, heartbeatAgeS: age },
      `took over this node's stale member card: ${why}`,
    );
    return true;
  }

  private async refuseDuplicate(): Promise<never> {
    const [raw, pttl] = await Promise.all([this.redis.get(this.key), this.redis.pttl(this.key)]);
    const holder = parseCard(this.opts.id, raw);
    // the heartbeat's age by Redis's clock (the key's TTL left): the holder's host may keep another time
    const age = pttl > 0 && holder.ok ? `, heartbeat ${Math.round((holder.card.ttlMs - pttl) / 1000)} s ago` : '';
    const who = holder.ok ? `${holder.card.host} pid ${holder.card.pid}${age}` : 'an unreadable card';
    const expires =
      pttl > 0
        ? `its key expires in ${(pttl / 1000).toFixed(1)} s unless that process is still alive`
        : 'its key has no TTL: delete it if no process runs with this id';
    const inUse = `NODE_ID ${this.opts.id} is already in use in cluster ${this.opts.cluster} (${who})`;
    throw new DuplicateNodeError(`${inUse}; choose another NODE_ID or wait: ${expires}`);
  }

  /** Publishes the state change and rewrites the card at once. */
  async setState(state: MemberState): Promise<void> {
    if (this.state === state || !this.claimed) return;
    this.state = state;
    this.log.info({ state, node: this.opts.id }, `member ${state}`);
    await this.heartbeat();
    await this.publish('state');
    await this.members.scan();
  }

  /**
   * Leaving: waits (at most `timeoutMs`) until every other active member publishes a view
   * without this node, i.e. has taken over its pks; resolves to whether they all did.
   */
  async awaitHandover(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const cards = await readMembers(this.redis, this.opts.cluster, 'index');
        const others = cards.flatMap((c) =>
          c.ok && c.card.state === 'active' && c.card.id !== this.opts.id ? [c.card] : [],
        );
        const expected = viewHash(others.map((c) => ({ id: c.id, weight: c.weight })));
        if (others.every((c) => c.view === expected)) return true;
      } catch {
        /* Redis down: nobody can take over; wait */
      }
      if (Date.now() > deadline) return false;
      await sleep(100);
    }
  }

  /** Stops heartbeating, deletes the key and announces the leave. Idempotent. */
  stop(): Promise<void> {
    this.closing ??= (async () => {
      await this.beats.stop();
      await this.members.stop();
      this.removeAllListeners('members');
      if (!this.claimed) return;
      try {
        await this.release(this.token);
        await this.publish('leave');
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'could not delete the member key; it expires with its TTL');
      }
      await this.members.unsubscribe();
    })();
    return this.closing;
  }

  /** Called by the node when its ring was rebuilt, so the card shows the view in use. */
  setView(members: readonly RingMember[]): void {
    const view = viewHash(members);
    if (view === this.view) return;
    this.view = view;
    void this.heartbeat();
  }

  private cardJson(): string {
    const card: MemberCard = {
      format: CARD_FORMAT,
      id: this.opts.id,
      host: this.place.host,
      pid: process.pid,
      ...(this.place.boot ? { boot: this.place.boot } : {}),
      ...(this.place.unit ? { unit: this.place.unit } : {}),
      version: VERSION,
      weight: this.opts.weight,
      state: this.state,
      started: this.started,
      heartbeat: this.now(),
      ttlMs: this.opts.ttlMs,
      view: this.view,
      token: this.token,
      keyspace: KEYSPACE_LAYOUT,
      stats: this.opts.stats?.() ?? {},
    };
    return JSON.stringify(card);
  }

  private async publish(type: 'join' | 'leave' | 'state'): Promise<void> {
    try {
      await this.redis.publish(this.channel, JSON.stringify({ type, id: this.opts.id, state: this.state }));
    } catch {
      /* lossy by design: peers rescan */
    }
  }

  /**
   * Refreshes the card; re-announces when the key is gone (Redis restarted, a long pause). If
   * another process took this id meanwhile, its card is left alone and the conflict logged once.
   */
  private async heartbeat(): Promise<void> {
    if (this.closing || !this.claimed) return;
    this.lastBeat = Date.now();
    let result: number;
    try {
      result = Number(await heartbeat(this.redis, [this.key], [this.cardJson(), this.opts.ttlMs, this.token]));
      // the index is one more key (another slot on a Redis Cluster): kept by its own command
      if (result >= 0) await this.redis.sadd(memberIndexKey(this.opts.cluster), this.opts.id);
    } catch {
      return; // Redis down: the connection logs it once; keep working on the last view
    }
    if (result === -1) {
      const taken = `another process took NODE_ID ${this.opts.id} while this one was away past its TTL`;
      if (!this.displaced)
        this.log.error({ node: this.opts.id }, `${taken}; this process is no longer a member: stop it`);
      this.displaced = true;
      return;
    }
    this.displaced = false;
    if (result === 1) {
      this.log.warn({ node: this.opts.id }, 'own member key was gone; announced again');
      await this.publish('join');
      this.members.requestScan();
    }
  }

  /** Deletes the card if it holds `token`, then the id from the member index. */
  private async release(token: string): Promise<void> {
    if ((await release(this.redis, [this.key], [token])) === 1)
      await this.redis.srem(memberIndexKey(this.opts.cluster), this.opts.id);
  }
}
