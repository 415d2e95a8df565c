/**
 * The requests a node holds, and how they end: answered here (a decision of this node), answered
 * from another node (through this node's Bus channel), woken by the user's stream or an
 * ephemeral event (then flushed), or expired when `wait` runs out or the node shuts down.
 *
 * A hold is only an HTTP connection: what an answer carries is recorded in the shared session
 * before it is sent, so a lost hold costs the client a retry, never an event.
 */
import type { Logger } from 'pino';
import type { Bus } from '../../bus/bus.js';
import type { StreamEvent } from '../../core/events.js';
import type { ParkingLot } from '../parking.js';
import { payloadBody, recoverable, terminal, type BoshResponse } from './body.js';
import { deviceOf, recordResponse, responseAck, sidTag } from './session.js';
import type { SessionStore } from './sessions.js';

/** Where the router sends the answer. Called exactly once per request. */
export type Reply = (r: BoshResponse) => void;

/** An answer decided under the lock, sent after it. */
export interface Delivery {
  node: string;
  rid: number;
  body: string;
}

/** A request this node holds. */
export interface LocalHold {
  sid: string;
  rid: number;
  reply: Reply;
  done: boolean;
  ctrl: AbortController;
  /** Settles when the request's handling is over (Holds.release). */
  released: Promise<void>;
  settle: () => void;
}

/**
 * The abort reasons of a hold: constants, since abort() without one builds a DOMException with a
 * stack trace per call (2% of a BOSH node's CPU under load). ANSWERED: someone answered it;
 * CLOSING: the node shuts down, the hold expires now.
 */
const ANSWERED = Object.freeze({ answered: true });
const CLOSING = Object.freeze({ closing: true });

/**
 * Answer held requests 1.5 s before `wait` ends: the parking lot's timer wheel turns every 250 ms,
 * a busy event loop adds its lag, and `wait` is a promise to the client (and to Heroku's 30 s
 * router) that must not be overrun. (It was 500 ms; the Heroku test had only ~0.3 s of slack.)
 */
const HOLD_MARGIN_MS = 1_500;

/** What the holds need from the node. */
export interface HoldsDeps {
  bus: Bus;
  lot: ParkingLot;
  sessions: SessionStore;
  nodeId: string;
  log: Logger;
  now: () => number;
  /** The user's stream moved or an ephemeral event came: answer the session's oldest held request. */
  flush: (sid: string, extra: StreamEvent[]) => Promise<void>;
}

/** The requests this node holds. */
export class Holds {
  private readonly holds = new Map<string, LocalHold>();
  private readonly channel: string;
  private ready: Promise<void> | null = null;
  private closing = false;
  private stopped = false;
  private readonly onNodeMessage = (payload: string) => this.fromOtherNode(payload);

  constructor(private readonly d: HoldsDeps) {
    this.channel = `bosh:n:${d.nodeId}`;
  }

  /** Subscribe this node's channel (answers decided on other nodes). Idempotent; nothing after stop. */
  start(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.ready ??= this.d.bus.subscribe(this.channel, this.onNodeMessage).catch((err: unknown) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }

  /** Whether the node is shutting down: requests are then answered instead of held. */
  get closed(): boolean {
    return this.closing;
  }

  /**
   * Answer every held request now (each expires: an empty answer, recorded for replay), and
   * later ones as soon as they would be held; resolves when all of them are answered.
   */
  async close(): Promise<void> {
    this.closing = true;
    const open = [...this.holds.values()];
    for (const h of open) if (!h.done) h.ctrl.abort(CLOSING);
    await Promise.all(open.map((h) => h.released));
  }

  /** close(), then remove this node's channel subscription. */
  async stop(): Promise<void> {
    await this.close();
    this.stopped = true;
    const subscribed = this.ready;
    this.ready = null;
    if (subscribed && (await subscribed.then(() => true, () => false))) {
      await this.d.bus.unsubscribe(this.channel, this.onNodeMessage).catch(() => undefined);
    }
  }

  /** Requests held on this node now. */
  get count(): number {
    return this.holds.size;
  }

  /**
   * Take a request in. The same rid again on this node: the client (or a proxy retrying) gave up
   * on the first connection, or two requests of one made-up sid met. This one takes over, and its
   * answer goes to both: a connection left open with no answer only ends when the proxy cuts it.
   */
  take(sid: string, rid: number, reply: Reply): LocalHold {
    const key = `${sid} ${rid}`;
    const previous = this.holds.get(key);
    const superseded = previous && !previous.done ? previous : undefined;
    const both: Reply = superseded ? (r) => (superseded.reply(r), reply(r)) : reply;
    let settle!: () => void;
    const released = new Promise<void>((r) => (settle = r));
    const hold: LocalHold = { sid, rid, reply: both, done: false, ctrl: new AbortController(), released, settle };
    this.holds.set(key, hold);
    if (superseded) {
      superseded.done = true;
      superseded.ctrl.abort(ANSWERED);
    }
    return hold;
  }

  /** The request's handling is over (answered, or given up to its successor). */
  release(hold: LocalHold): void {
    hold.done = true;
    const key = `${hold.sid} ${hold.rid}`;
    if (this.holds.get(key) === hold) this.holds.delete(key);
    hold.settle();
  }

  /** Answer a request directly (a decision of its own step). */
  finish(hold: LocalHold, r: BoshResponse): void {
    if (hold.done) return;
    hold.done = true;
    hold.reply(r);
  }

  /** Send decided answers: local ones now, others through their node's channel. */
  send(sid: string, deliveries: readonly Delivery[]): void {
    for (const d of deliveries) {
      if (d.node === this.d.nodeId) this.deliverLocal(sid, d.rid, d.body);
      else {
        this.d.bus.publish(`bosh:n:${d.node}`, JSON.stringify({ sid, rid: d.rid, body: d.body })).catch((err: unknown) => {
          // The answer is in the shared buffer: the holder finds it when its wait ends, or the client retries.
          this.d.log.warn({ err, node: d.node }, 'cross-node answer publish failed');
        });
      }
    }
  }

  private deliverLocal(sid: string, rid: number, body: string): void {
    const h = this.holds.get(`${sid} ${rid}`);
    if (!h || h.done) return;
    h.done = true;
    h.ctrl.abort(ANSWERED);
    h.reply({ status: 200, body });
  }

  private fromOtherNode(payload: string): void {
    try {
      const m = JSON.parse(payload) as { sid?: unknown; rid?: unknown; body?: unknown };
      if (typeof m.sid === 'string' && typeof m.rid === 'number' && typeof m.body === 'string') this.deliverLocal(m.sid, m.rid, m.body);
    } catch {
      this.d.log.warn('malformed cross-node answer');
    }
  }

  /**
   * Park a held request until it is answered (here or by another node), the user's stream moves
   * (then flush), an ephemeral event arrives, `wait` runs out or the node shuts down (then expire).
   * Before login there is no stream to wait on: a timer, ended by an answer or by close().
   */
  async park(hold: LocalHold, waitS: number, userId: number | null, after: number | null): Promise<void> {
    const deadline = this.d.now() + Math.max(0, waitS * 1000 - HOLD_MARGIN_MS);
    const signal = hold.ctrl.signal;
    if (userId === null) {
      if (!signal.aborted && !this.closing) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(0, deadline - this.d.now()));
          signal.addEventListener('abort', () => {
            clearTimeout(t);
            resolve();
          }, { once: true });
        });
      }
      if (!hold.done) await this.expire(hold.sid, hold.rid);
      return;
    }
    let pos = after ?? this.d.lot.head(userId);
    while (!hold.done) {
      const outcome = this.closing
        ? ({ kind: 'closed' } as const)
        : await this.d.lot.wait(userId, pos, deadline - this.d.now(), signal, deviceOf(hold.sid));
      if (hold.done) return;
      if (outcome.kind === 'wake') {
        pos = Math.max(pos, this.d.lot.head(userId));
        await this.d.flush(hold.sid, []);
      } else if (outcome.kind === 'ephemeral') {
        await this.d.flush(hold.sid, [outcome.event]);
      } else {
        await this.expire(hold.sid, hold.rid);
        return;
      }
    }
  }

  /** A held request's wait is over: answer it empty, unless it was answered meanwhile (then resend that). */
  private async expire(sid: string, rid: number): Promise<void> {
    try {
      const body = await this.d.sessions.update(sid, (s) => {
        if (!s) return { result: terminal('item-not-found', false).body, save: null };
        const buffered = s.buffer.find((b) => b.rid === rid);
        if (!s.held.some((h) => h.rid === rid)) return { result: buffered?.body ?? payloadBody([]), save: null };
        const b = payloadBody([], { ack: responseAck(s, rid) });
        s.lastExchangeEmpty = true;
        recordResponse(s, rid, b, this.d.now());
        return { result: b, save: s };
      });
      this.deliverLocal(sid, rid, body);
    } catch (err) {
      this.d.log.warn({ err, session: sidTag(sid), rid }, 'expire failed');
      this.deliverLocal(sid, rid, recoverable().body);
    }
  }
}
