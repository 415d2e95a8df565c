import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import type { NewEntry, Store } from '../store/store.js';
import type { Notifier } from './notifier.js';

/** Online means a heartbeat within 60 s by default (PRESENCE_TIMEOUT): a long-poll re-polls at least every 25 s. */
export const ONLINE_WINDOW_MS = 60_000;
/** A node writes a user's heartbeat to the bus at most every 5 s (or a twelfth of the window), not on every request. */
const HEARTBEAT_EVERY_MS = 5_000;
/** How often each node sweeps expired heartbeats (at most every 5 s, more often for short windows). */
const SWEEP_EVERY_MS = 5_000;
/** Presence changes are gathered for 1 s and written in one transaction (presence storms). */
export const COALESCE_MS = 1_000;

/** A contact's presence as the API shows it. */
export interface PresenceView {
  online: boolean;
  last_seen: string | null;
}

/**
 * Presence from heartbeats: every request of a user is one. The bus keeps user → node → time;
 * the first heartbeat after an absence is "online", a sweep claims each expiry once ("offline").
 * Changes go to contacts' streams, coalesced per second.
 */
export class Presence {
  private readonly lastWrite = new Map<number, number>();
  private pending = new Map<number, { before: boolean; now: boolean; at: number }>();
  private timers: NodeJS.Timeout[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private readonly log: Logger;
  private readonly heartbeatEvery: number;
  private readonly sweepEvery: number;

  constructor(
    private readonly bus: Bus,
    private readonly store: Store,
    private readonly notifier: Notifier,
    private readonly nodeId: string,
    log: Logger,
    private readonly window: number = ONLINE_WINDOW_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.log = log.child({ module: 'presence' });
    this.heartbeatEvery = Math.min(HEARTBEAT_EVERY_MS, Math.floor(window / 12));
    this.sweepEvery = Math.min(SWEEP_EVERY_MS, Math.max(100, Math.floor(window / 4)));
  }

  /**
   * Start the sweeper and the coalescing flush. `holding` lists users with a request parked on
   * this node: a parked request is presence too, so they are kept online while they wait.
   */
  start(holding: () => Iterable<number> = () => []): void {
    this.timers.push(
      setInterval(() => {
        for (const id of holding()) this.touch(id);
        void this.sweep();
      }, this.sweepEvery).unref(),
    );
    this.timers.push(setInterval(() => void this.flush(), COALESCE_MS).unref());
  }

  /** Stop timers and write what is pending. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.flush();
  }

  /** A request of this user reached this node. */
  touch(userId: number): void {
    const t = this.now();
    const last = this.lastWrite.get(userId);
    if (last !== undefined && t - last < this.heartbeatEvery) return;
    this.lastWrite.set(userId, t);
    this.bus.heartbeat(String(userId), this.nodeId, t).then(
      (cameOnline) => {
        if (cameOnline) this.change(userId, true, t);
      },
      (err: unknown) => this.log.warn({ err }, 'heartbeat failed'),
    );
  }

  /** Presence of some users: online from the bus, last seen from it or from the database. */
  async of(users: ReadonlyArray<{ id: number; lastSeen: Date | null }>): Promise<Map<number, PresenceView>> {
    const beats = await this.bus.lastHeartbeats(users.map((u) => String(u.id)));
    const out = new Map<number, PresenceView>();
    for (const u of users) {
      const beat = beats.get(String(u.id));
      const online = beat !== undefined && this.now() - beat < this.window;
      out.set(u.id, {
        online,
        last_seen: beat !== undefined ? new Date(beat).toISOString() : (u.lastSeen?.toISOString() ?? null),
      });
    }
    return out;
  }

  /** Claim expired heartbeats (each exactly once across nodes) and announce them offline. */
  async sweep(): Promise<void> {
    try {
      const t = this.now();
      for (const [id, at] of this.lastWrite) if (t - at > this.window) this.lastWrite.delete(id);
      const expired = await this.bus.sweepExpired(t - this.window, 1000);
      if (expired.length === 0) return;
      await this.store.setLastSeen(expired.map((e) => ({ userId: Number(e.userId), at: new Date(e.lastMs) })));
      for (const e of expired) {
        this.lastWrite.delete(Number(e.userId));
        this.change(Number(e.userId), false, e.lastMs);
      }
    } catch (err) {
      this.log.warn({ err }, 'presence sweep failed');
    }
  }

  private change(userId: number, online: boolean, at: number): void {
    const p = this.pending.get(userId);
    if (p) {
      p.now = online;
      p.at = at;
    } else {
      this.pending.set(userId, { before: !online, now: online, at });
    }
  }

  /** Write the gathered changes: one presence entry per contact per user whose state really changed. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const batch = [...this.pending].filter(([, p]) => p.before !== p.now);
      this.pending = new Map();
      if (batch.length === 0) return;
      try {
        const ids = batch.map(([id]) => id);
        const [contacts, users] = await Promise.all([this.store.contactIds(ids), this.store.usersByIds(ids)]);
        const names = new Map(users.map((u) => [Number(u.id), u.name]));
        const entries: NewEntry[] = [];
        for (const [id, p] of batch) {
          const payload = { user: names.get(id), online: p.now, last_seen: new Date(p.at).toISOString() };
          for (const c of contacts.get(id) ?? []) entries.push({ userId: c, type: 'presence', payload });
        }
        this.notifier.wake(await this.store.appendNow(entries));
      } catch (err) {
        this.log.warn({ err }, 'presence flush failed');
      }
    });
    return this.flushing;
  }
}
