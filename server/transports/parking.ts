import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import { decodeWake, userChannel } from '../core/notifier.js';
import type { StreamEvent } from '../core/events.js';

/** The timer wheel turns every 250 ms: one timer for every parked request on the node. */
const TICK_MS = 250;
/**
 * A user's channel stays subscribed 15 s after their last parked request ends: clients re-poll at
 * once, and re-subscribing on every poll would cost a Redis round trip each time.
 */
const LINGER_MS = 15_000;
/**
 * A device's own message does not wake its waiting poll at once: the delivered receipt for it
 * usually follows within this time and both go in one answer (one poll instead of two). Another
 * tab sharing the device's token still sees the message within this time.
 */
const ECHO_DEFER_MS = 1_000;
/**
 * A receipt alone does not wake a waiting poll at once either: within this time the user's next
 * message (or more receipts) usually arrives, and all of them go in one answer. Under load this
 * saves most of the senders' polls (issue 8); when the user is quiet, a receipt shows this late.
 */
export const RECEIPT_DEFER_MS = 500;

/**
 * How long a stream head read from the database stays trusted while the user's channel stays
 * live: within it, a poll that is up to date parks without asking the database, since every
 * commit after the read announced its new head on the channel. A wake-up lost with the node that
 * should have published it is noticed at the next check, at most this long after the last one.
 */
const TRUST_MS = 10_000;
/**
 * Carried events a slot keeps, by stream position (a woken poll answers from them); those a
 * device of the user acknowledged here are dropped sooner (a lagging device reads the database).
 */
const RECENT_MAX = 32;
/**
 * Parked requests one user may have on a node (PARKED_PER_USER): a few devices, each with a
 * long-poll or a BOSH hold or two. One token once parked 300. A further one answers the oldest
 * (empty, as if its wait ran out), so the newest request of a client that lost track still waits.
 */
export const PARKED_PER_USER = 6;

/** Why a parked request stopped waiting. */
export type WaitOutcome =
  | { kind: 'wake' }
  | { kind: 'timeout' }
  | { kind: 'closed' }
  | { kind: 'ephemeral'; event: StreamEvent };

interface Waiter {
  after: number;
  deadline: number;
  /** The device waiting, when known: its own echo alone does not wake it at once. */
  device: string | undefined;
  /** When the deferred entries (see Slot.lazy) wake this waiter. */
  lazyDue?: number;
  resolve: (o: WaitOutcome) => void;
}

/** An entry that may wait: until `at + deferMs`, for every waiter (or only the device `device`). */
interface Lazy {
  at: number;
  deferMs: number;
  device?: string;
}

interface Slot {
  waiters: Set<Waiter>;
  /** Highest head announced for this user since the channel went live. */
  head: number;
  refs: number;
  idleSince: number;
  live: Promise<void>;
  /** The subscription is live (wake-ups published from now on arrive). */
  isLive: boolean;
  /** When the head was last read from the database while live (0: never, or since a pub/sub gap). */
  verifiedAt: number;
  /** Highest position this node knows acknowledged. */
  acked: number;
  /** Events carried by wake-ups, by stream position; the oldest dropped past RECENT_MAX. */
  recent: Map<number, StreamEvent>;
  /**
   * Positions whose entry need not wake a waiter at once (a device's own message, a receipt), with
   * when it arrived and how long it may wait; the oldest dropped past RECENT_MAX.
   */
  lazy: Map<number, Lazy>;
  handler: (payload: string) => void;
}

/** Numbers the lot reports to metrics. */
export interface ParkingStats {
  parked: () => number;
  observeWake: (seconds: number) => void;
}

/**
 * The parking lot: a node's parked requests, per user. A request first *enters* (the user's
 * channel is subscribed and live), then reads, then waits: a wake-up published after its read
 * cannot be missed, and one that raced the read is caught by comparing heads.
 * Transports (long-poll, BOSH) share it; a parked request never throws.
 */
export class ParkingLot {
  private readonly slots = new Map<number, Slot>();
  private readonly wheel = new Map<number, Set<Waiter & { userId: number }>>();
  private timer: NodeJS.Timeout | undefined;
  private stopResume: (() => void) | undefined;
  private closing = false;
  private count = 0;
  private readonly log: Logger;

  constructor(
    private readonly bus: Bus,
    log: Logger,
    private readonly now: () => number = Date.now,
    private readonly onWakeLatency: (seconds: number) => void = () => undefined,
    /** Where an answer's events came from (see transports/reading.ts), for metrics. */
    readonly onRead: (source: 'wakeup' | 'database') => void = () => undefined,
    /** See TRUST_MS (tests shorten it). */
    private readonly trustMs: number = TRUST_MS,
    /** See PARKED_PER_USER. */
    private readonly perUser: number = PARKED_PER_USER,
  ) {
    this.log = log.child({ module: 'parking' });
  }

  /** Requests parked now. */
  get parked(): number {
    return this.count;
  }

  /** Users with a request parked here now. */
  *holding(): Iterable<number> {
    for (const [id, slot] of this.slots) if (slot.refs > 0) yield id;
  }

  /** True once shutdown began: transports answer at once instead of parking. */
  get isClosing(): boolean {
    return this.closing;
  }

  /** Start the timer wheel. */
  start(): void {
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
    // After a pub/sub gap wake-ups may have been lost: every waiter re-reads the database.
    this.stopResume = this.bus.onResume(() => {
      for (const slot of this.slots.values()) {
        slot.verifiedAt = 0; // heads announced in the gap are unknown: the next poll reads
        for (const w of [...slot.waiters]) w.resolve({ kind: 'wake' });
      }
    });
  }

  /**
   * Hold a place for a user: subscribe their channel (resolves once live). Every enter is
   * followed by one leave.
   */
  async enter(userId: number): Promise<void> {
    let slot = this.slots.get(userId);
    if (!slot) {
      const s: Slot = {
        waiters: new Set(),
        head: 0,
        refs: 0,
        idleSince: 0,
        live: Promise.resolve(),
        isLive: false,
        verifiedAt: 0,
        acked: 0,
        recent: new Map(),
        lazy: new Map(),
        handler: (payload) => this.onPayload(userId, s, payload),
      };
      s.live = this.bus.subscribe(userChannel(userId), s.handler).then(() => {
        s.isLive = true;
      });
      this.slots.set(userId, s);
      slot = s;
    }
    slot.refs++;
    try {
      await slot.live;
    } catch (err) {
      // Without a live channel the request still answers, just by timeout; the bus reconnects.
      this.log.warn({ err, userId }, 'subscribe failed');
    }
  }

  /** Give the place back. */
  leave(userId: number): void {
    const slot = this.slots.get(userId);
    if (!slot) return;
    slot.refs--;
    if (slot.refs <= 0) slot.idleSince = this.now();
  }

  /** The highest head announced for a user while their channel was live (0 when none). */
  head(userId: number): number {
    return this.slots.get(userId)?.head ?? 0;
  }

  /** True when the user's channel is live here: a database read now can be followed by `verified`. */
  isLive(userId: number): boolean {
    return this.slots.get(userId)?.isLive === true;
  }

  /**
   * The user's stream head was read from the database (`head`, with everything up to `acked`
   * acknowledged) after their channel went live here: from now on wake-ups keep it current.
   */
  verified(userId: number, head: number, acked: number): void {
    const slot = this.slots.get(userId);
    if (!slot?.isLive) return;
    slot.head = Math.max(slot.head, head);
    slot.verifiedAt = this.now();
    this.markAcked(userId, acked);
  }

  /** The user's stream head if it is known here without asking the database (see TRUST_MS), else null. */
  knownHead(userId: number): number | null {
    const slot = this.slots.get(userId);
    if (!slot?.isLive || slot.verifiedAt === 0 || this.now() - slot.verifiedAt > this.trustMs) return null;
    return slot.head;
  }

  /** Highest position known acknowledged here (0 when unknown). */
  acked(userId: number): number {
    return this.slots.get(userId)?.acked ?? 0;
  }

  /** This node acknowledged the user's stream up to seq. */
  markAcked(userId: number, seq: number): void {
    const slot = this.slots.get(userId);
    if (!slot) return;
    slot.acked = Math.max(slot.acked, seq);
    for (const pos of slot.recent.keys()) if (pos <= slot.acked) slot.recent.delete(pos);
    for (const pos of slot.lazy.keys()) if (pos <= slot.acked) slot.lazy.delete(pos);
  }

  /** The carried events for positions after+1 … head, when every one of them came with its wake-up; else null. */
  cached(userId: number, after: number, head: number): StreamEvent[] | null {
    const slot = this.slots.get(userId);
    if (!slot || head <= after || head - after > RECENT_MAX) return null;
    const out: StreamEvent[] = [];
    for (let seq = after + 1; seq <= head; seq++) {
      const event = slot.recent.get(seq);
      if (!event) return null;
      out.push(event);
    }
    return out;
  }

  /**
   * Wait (between enter and leave) until the user's stream moves past `after`, an ephemeral
   * event arrives, waitMs passes, the signal aborts or the node shuts down.
   */
  wait(userId: number, after: number, waitMs: number, signal?: AbortSignal, device?: string): Promise<WaitOutcome> {
    const slot = this.slots.get(userId);
    if (this.closing || !slot) return Promise.resolve({ kind: 'closed' });
    if (slot.head > after) return Promise.resolve({ kind: 'wake' });
    if (waitMs <= 0) return Promise.resolve({ kind: 'timeout' });
    if (signal?.aborted) return Promise.resolve({ kind: 'closed' });
    return new Promise<WaitOutcome>((resolve) => {
      const deadline = this.now() + waitMs;
      const bucket = Math.ceil(deadline / TICK_MS);
      const waiter: Waiter & { userId: number } = {
        userId,
        after,
        deadline,
        device,
        resolve: (o) => {
          if (!slot.waiters.delete(waiter)) return;
          this.wheel.get(bucket)?.delete(waiter);
          if (waiter.lazyDue !== undefined) this.wheel.get(Math.ceil(waiter.lazyDue / TICK_MS))?.delete(waiter);
          this.count--;
          signal?.removeEventListener('abort', onAbort);
          resolve(o);
        },
      };
      const onAbort = () => waiter.resolve({ kind: 'closed' });
      signal?.addEventListener('abort', onAbort, { once: true });
      // Sets keep insertion order: the first waiter is the oldest.
      while (slot.waiters.size >= this.perUser) slot.waiters.values().next().value!.resolve({ kind: 'timeout' });
      slot.waiters.add(waiter);
      this.bucket(bucket).add(waiter);
      this.count++;
    });
  }

  /** Shutdown: answer every parked request now; later ones answer at once. */
  closeAll(): void {
    this.closing = true;
    for (const slot of this.slots.values()) for (const w of [...slot.waiters]) w.resolve({ kind: 'closed' });
  }

  /** Stop the wheel and drop every subscription. */
  async stop(): Promise<void> {
    this.closeAll();
    if (this.timer) clearInterval(this.timer);
    this.stopResume?.();
    const all = [...this.slots.entries()];
    this.slots.clear();
    await Promise.all(all.map(([id, s]) => this.bus.unsubscribe(userChannel(id), s.handler).catch(() => undefined)));
  }

  private onPayload(userId: number, slot: Slot, payload: string): void {
    const wake = decodeWake(payload);
    if (!wake) return;
    if (wake.kind === 'head') {
      const t = this.now();
      if (wake.sentAt > 0) this.onWakeLatency(Math.max(0, t - wake.sentAt) / 1000);
      if (wake.event) {
        // Wake-ups from different nodes may arrive out of order: keep each event by position.
        slot.recent.set(wake.head, wake.event);
        if (slot.recent.size > RECENT_MAX) slot.recent.delete(slot.recent.keys().next().value as number);
      }
      // The device's own message: it has it already (the send answered it). A receipt: news
      // that can wait a little for company. Either comes with the next answer instead of
      // costing a poll of its own.
      const lazy: Lazy | undefined =
        wake.echoOf !== undefined
          ? { at: t, deferMs: ECHO_DEFER_MS, device: wake.echoOf }
          : wake.event?.type === 'receipt'
            ? { at: t, deferMs: RECEIPT_DEFER_MS }
            : undefined;
      if (lazy) {
        slot.lazy.set(wake.head, lazy);
        if (slot.lazy.size > RECENT_MAX) slot.lazy.delete(slot.lazy.keys().next().value as number);
      }
      if (wake.head <= slot.head) return;
      slot.head = wake.head;
      for (const w of [...slot.waiters]) {
        if (wake.head <= w.after) continue;
        const due = this.lazyUntil(slot, w);
        if (due === null) {
          w.resolve({ kind: 'wake' });
        } else if (w.lazyDue === undefined || due < w.lazyDue) {
          w.lazyDue = due;
          this.bucket(Math.ceil(due / TICK_MS)).add(w as Waiter & { userId: number });
        }
      }
    } else {
      for (const w of [...slot.waiters]) w.resolve({ kind: 'ephemeral', event: wake.event });
    }
    void userId;
  }

  /**
   * When a waiter must wake for the entries after its position, when every one of them may wait
   * (see Slot.lazy; an echo only for the device that sent it): the earliest entry's due time.
   * Null: some entry must wake it now.
   */
  private lazyUntil(slot: Slot, w: Waiter): number | null {
    if (slot.head - w.after > RECENT_MAX) return null;
    let due = Infinity;
    for (let pos = w.after + 1; pos <= slot.head; pos++) {
      const l = slot.lazy.get(pos);
      if (!l || (l.device !== undefined && l.device !== w.device)) return null;
      due = Math.min(due, l.at + l.deferMs);
    }
    return due;
  }

  private bucket(n: number): Set<Waiter & { userId: number }> {
    let set = this.wheel.get(n);
    if (!set) this.wheel.set(n, (set = new Set()));
    return set;
  }

  private tick(): void {
    const t = this.now();
    const upTo = Math.floor(t / TICK_MS);
    for (const [bucket, set] of this.wheel) {
      if (bucket > upTo) continue;
      this.wheel.delete(bucket);
      for (const w of set) {
        if (w.lazyDue !== undefined && w.lazyDue <= t + TICK_MS) w.resolve({ kind: 'wake' });
        else if (w.deadline <= t + TICK_MS) w.resolve({ kind: 'timeout' });
        // else another bucket holds it (a later deadline, or a due time since brought forward)
      }
    }
    for (const [id, slot] of this.slots) {
      if (slot.refs <= 0 && slot.waiters.size === 0 && t - slot.idleSince > LINGER_MS) {
        this.slots.delete(id);
        this.bus.unsubscribe(userChannel(id), slot.handler).catch((err: unknown) => this.log.warn({ err }, 'unsubscribe failed'));
      }
    }
  }
}
