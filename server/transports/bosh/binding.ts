/**
 * The BOSH connection manager (XEP-0124 binding, XEP-0206): one request in, decisions under the
 * session lock, answers out.
 *
 * Knows nothing of HTTP (the router hands it a string and a reply function). A request is
 * processed in three steps: (1) under the session lock, apply the XEP-0124 rules (session.ts),
 * run the payload's stanzas against the core (xmpp.ts), add the request to `held` and decide
 * which held requests to answer (the answer bodies are recorded in the shared state for replay
 * before anything is sent); (2) after the lock, send the answers: to a local request directly, to
 * another node's through its Bus channel; (3) if this request stays held, park it (holds.ts)
 * until the user's stream moves, `wait` runs out or the node shuts down.
 *
 * Nothing an answer carries exists only in memory: a node killed with held requests loses the
 * HTTP connections, the client retries the rid elsewhere, and the retry is answered from the
 * shared state (replay, or held again). Events are confirmed to the core only when the client
 * acknowledges the response that carried them.
 */
import type { Logger } from 'pino';
import type { Bus } from '../../bus/bus.js';
import type { Core } from '../../core/core.js';
import { AppError } from '../../core/errors.js';
import type { StreamEvent } from '../../core/events.js';
import { decodeCursor } from '../../core/streams.js';
import type { ParkingLot } from '../parking.js';
import { readFrom } from '../reading.js';
import { creationBody, payloadBody, recoverable, terminal, terminateAck, type BoshResponse, type TerminalCondition } from './body.js';
import { Holds, type Delivery, type Reply } from './holds.js';
import {
  applyAck, BOSH_NS, classifyRid, createSession, isInactive, MAX_OUTQ, MAX_PAUSE_S, negotiate, newSid, overactivity,
  parseRid, pruneHeld, recordResponse, reportFor, responseAck, sidTag, type SessionState,
} from './session.js';
import { LockLost, LockTimeout, SessionStore, type Outcome } from './sessions.js';
import { NS, postAuthFeatures, preAuthFeatures } from './stanzas.js';
import { childElements, parseXml, serialize, XmlError, type XmlElement } from './xml.js';
import { principalOf, queue, Xmpp, type Origin } from './xmpp.js';

export type { Reply } from './holds.js';
export type { Origin } from './xmpp.js';

/** What the manager needs from the rest of Parley. */
export interface BoshDeps {
  core: Core;
  lot: ParkingLot;
  bus: Bus;
  nodeId: string;
  domain: string;
  log: Logger;
  now?: () => number;
}

/** What one locked step decided for the request that triggered it. */
type Step =
  | { kind: 'reply'; response: BoshResponse; deliveries?: Delivery[] }
  | { kind: 'early' }
  | { kind: 'held'; deliveries: Delivery[]; wait: number; userId: number | null; after: number | null };

/**
 * One body carries at most this many stanzas. A client sends a handful per request (Converse.js:
 * a message and its chat state); one body once carried 300 messages, 4.5 s of work under a 3 s
 * session lock. More is refused as a policy violation before any of them is run.
 */
export const MAX_STANZAS_PER_BODY = 50;
/** How often a request that arrived before the gap below it re-checks the window. */
const EARLY_POLL_MS = 10;

const STREAMS_NS = 'urn:ietf:params:xml:ns:xmpp-streams';

/** The BOSH connection manager of one node: built with the node's dependencies, stopped at shutdown. */
export class BoshManager {
  private readonly sessions: SessionStore;
  private readonly holds: Holds;
  private readonly xmpp: Xmpp;
  private readonly sidUser = new Map<string, number>();
  private readonly log: Logger;
  private readonly now: () => number;

  constructor(private readonly d: BoshDeps) {
    this.sessions = new SessionStore(d.bus);
    this.log = d.log.child({ module: 'bosh' });
    this.now = d.now ?? Date.now;
    this.xmpp = new Xmpp(d.core, d.domain, this.log);
    this.holds = new Holds({
      bus: d.bus,
      lot: d.lot,
      sessions: this.sessions,
      nodeId: d.nodeId,
      log: this.log,
      now: this.now,
      flush: (sid, extra) => this.flush(sid, extra),
    });
  }

  /** Subscribe this node's channel (answers decided on other nodes). Idempotent. */
  start(): Promise<void> {
    return this.holds.start();
  }

  /**
   * The first step of a shutdown: answer every held request now (before login too), and later
   * ones at once (the client's next request goes to another node); resolves once all are answered.
   */
  close(): Promise<void> {
    return this.holds.close();
  }

  /** Answer what is held (close) and remove this node's channel subscription. */
  stop(): Promise<void> {
    return this.holds.stop();
  }

  /** Requests held on this node now. */
  get heldCount(): number {
    return this.holds.count;
  }

  /** Handle one request body. Never throws: every failure becomes a BOSH answer. */
  async handle(raw: string, reply: Reply, origin: Origin = { address: 'unknown' }): Promise<void> {
    let once = false;
    const answer: Reply = (r) => {
      if (once) return;
      once = true;
      reply(r);
    };
    try {
      await this.start();
      await this.dispatchRequest(raw, answer, origin);
    } catch (err) {
      if (err instanceof LockTimeout || err instanceof LockLost) {
        this.log.warn({ err }, err instanceof LockLost ? 'session step outlived its lock' : 'session lock timeout');
        answer(recoverable());
      } else {
        // Nothing was saved (the locked step failed as a whole): the recoverable error makes the
        // client resend the rid, which is then processed afresh; a transient database or Redis
        // error must not end the session.
        this.log.error({ err }, 'BOSH request failed');
        answer(recoverable());
      }
    }
  }

  private async dispatchRequest(raw: string, reply: Reply, origin: Origin): Promise<void> {
    let body: XmlElement;
    try {
      body = parseXml(raw);
    } catch (err) {
      if (!(err instanceof XmlError)) throw err;
      return reply(terminal('bad-request', false));
    }
    if (body.local !== 'body' || body.ns !== BOSH_NS) return reply(terminal('bad-request', false));
    const rid = parseRid(body.attrs.rid);
    const sid = body.attrs.sid;
    if (sid === undefined) return this.create(body, rid, reply, origin);
    if (rid === null || !/^[A-Za-z0-9_-]{1,64}$/.test(sid)) {
      const s = /^[A-Za-z0-9_-]{1,64}$/.test(sid) ? await this.sessions.get(sid) : null;
      return reply(terminal('bad-request', s?.ver === null));
    }
    // Enter the user's parking place before the locked step reads the stream, so that a wake-up
    // published between that read and the wait cannot be missed.
    let userId = this.sidUser.get(sid) ?? null;
    if (userId === null) {
      const peek = await this.sessions.get(sid);
      if (peek?.userId != null) {
        userId = peek.userId;
        this.rememberUser(sid, userId);
      }
    }
    if (userId !== null) await this.d.lot.enter(userId);
    const hold = this.holds.take(sid, rid, reply);
    try {
      const deadline = this.now() + 30_000;
      for (;;) {
        const step = await this.sessions.update(sid, (s) => this.step(s, body, rid, origin));
        if (step.kind === 'early') {
          // 30 s at most for the gap to fill (less at shutdown); then the recoverable error makes the client resend.
          if (this.now() > deadline || hold.done || this.holds.closed) return this.holds.finish(hold, recoverable());
          await new Promise((r) => setTimeout(r, EARLY_POLL_MS));
          continue;
        }
        if (step.kind === 'reply') {
          this.holds.send(sid, step.deliveries ?? []);
          return this.holds.finish(hold, step.response);
        }
        this.holds.send(sid, step.deliveries);
        if (hold.done) return;
        if (step.userId !== null && userId === null) {
          // Authenticated during this very request: park in the lot from now on.
          userId = step.userId;
          this.rememberUser(sid, userId);
          await this.d.lot.enter(userId);
        }
        await this.holds.park(hold, step.wait, userId, step.after);
        return;
      }
    } finally {
      if (userId !== null) this.d.lot.leave(userId);
      this.holds.release(hold);
    }
  }

  private rememberUser(sid: string, userId: number): void {
    if (this.sidUser.size > 100_000) this.sidUser.clear();
    this.sidUser.set(sid, userId);
  }

  /** Session creation (XEP-0124 §7, XEP-0206 §5): answered at once, with the SASL features. */
  private async create(body: XmlElement, rid: number | null, reply: Reply, origin: Origin): Promise<void> {
    const legacy = body.attrs.ver === undefined;
    if (rid === null) return reply(terminal('bad-request', legacy));
    try {
      await this.d.core.limits.boshSession(origin.address);
    } catch (err) {
      if (err instanceof AppError && err.status === 429) return reply(terminal('policy-violation', legacy));
      throw err;
    }
    const n = negotiate(body.attrs);
    if ('error' in n) return reply(terminal('bad-request', legacy));
    const to = body.attrs.to;
    if (to !== undefined && to.toLowerCase() !== this.d.domain) return reply(terminal('host-unknown', legacy));
    const now = this.now();
    const s = createSession(newSid(), rid, n, now);
    const answer = creationBody(s, this.d.domain, rid, [preAuthFeatures()]);
    recordResponse(s, rid, answer, now);
    if (!(await this.sessions.create(s))) return reply(terminal('internal-server-error', legacy));
    this.log.debug({ session: sidTag(s.sid), wait: s.wait, hold: s.hold }, 'session created');
    reply({ status: 200, body: answer });
  }

  /** The locked step for one request. */
  private async step(s: SessionState | null, body: XmlElement, rid: number, origin: Origin): Promise<Outcome<Step>> {
    const now = this.now();
    const end = (condition: TerminalCondition, legacy: boolean, extra: Delivery[] = []): Outcome<Step> => ({
      result: { kind: 'reply', response: terminal(condition, legacy), deliveries: extra },
      save: null,
      drop: s !== null,
    });
    if (!s) return { result: { kind: 'reply', response: terminal('item-not-found', false) }, save: null };
    const legacy = s.ver === null;
    for (const gone of pruneHeld(s, now)) recordResponse(s, gone, payloadBody([]), now);
    if (isInactive(s, now)) return end('item-not-found', legacy);

    const c = classifyRid(s, rid);
    switch (c.kind) {
      case 'replay':
        return { result: { kind: 'reply', response: { status: 200, body: c.body } }, save: null };
      case 'invalid':
        return end('item-not-found', legacy);
      case 'early':
        return { result: { kind: 'early' }, save: null };
      case 'retry': {
        const h = s.held.find((x) => x.rid === rid)!;
        h.node = this.d.nodeId;
        h.at = now;
        // Its first holder may have died with a wake-up meant for it: look at the stream now.
        const deliveries = await this.drain(s, [], now);
        return { result: { kind: 'held', deliveries, wait: s.wait, userId: s.userId, after: s.sentCursor }, save: s };
      }
    }

    // The next rid, in order.
    const pauseAttr = body.attrs.pause;
    const pause = pauseAttr !== undefined && /^\d{1,6}$/.test(pauseAttr) ? Number(pauseAttr) : null;
    const terminate = body.attrs.type === 'terminate';
    const restart = Object.entries(body.attrs).some(([k, v]) => k.endsWith(':restart') && (v === 'true' || v === '1'));
    const stanzas = childElements(body);
    const empty = stanzas.length === 0 && !restart;
    if (overactivity(s, { rid, empty, pause: pause !== null, terminate }, now)) {
      return end('policy-violation', legacy, this.answerAll(s, terminal('policy-violation', false).body, now, false));
    }
    if (stanzas.length > MAX_STANZAS_PER_BODY) {
      return end('policy-violation', legacy, this.answerAll(s, terminal('policy-violation', false).body, now, false));
    }
    const ackAttr = parseRid(body.attrs.ack);
    const report = reportFor(s, ackAttr, now);
    const confirmed = applyAck(s, rid, ackAttr);
    const me = principalOf(s);
    if (confirmed !== null && me) await this.d.core.streams.acknowledge(me, confirmed);
    s.lastRid = rid;
    s.lastRequestAt = now;
    s.pause = null;
    if (me) this.d.core.presence.touch(me.id);

    if (restart) {
      if (s.auth === 'none') return end('bad-request', legacy);
      queue(s, serialize(postAuthFeatures()));
    }
    let auths = 0;
    for (const st of stanzas) {
      // One SASL attempt per request: each costs a password hash, and a body once carried 590.
      const fatal = st.local === 'auth' && ++auths > 1 ? 'policy-violation' : await this.xmpp.command(s, st, origin);
      if (fatal) {
        // XEP-0206 §8: a stream error ends the session, carried in the terminate body (after
        // what was queued for the client, such as the SASL failure that led to it).
        const queued = s.outq.splice(0, s.outq.length).join('');
        const response = {
          status: 200,
          body: `<body xmlns='${BOSH_NS}' xmlns:stream='${NS.stream}' type='terminate' condition='remote-stream-error'>${queued}<stream:error><${fatal} xmlns='${STREAMS_NS}'/></stream:error></body>`,
        };
        return { result: { kind: 'reply', response, deliveries: this.answerAll(s, response.body, now, false) }, save: null, drop: true };
      }
    }
    if (s.outq.length > MAX_OUTQ) return end('policy-violation', legacy);

    if (terminate) {
      const bye = terminateAck();
      return { result: { kind: 'reply', response: { status: 200, body: bye }, deliveries: this.answerAll(s, bye, now, false) }, save: null, drop: true };
    }
    if (pause !== null) {
      // XEP-0124 §10: answer everything at once, without payloads; the pause answer is not replayable.
      const deliveries = this.answerAll(s, payloadBody([]), now, true);
      s.pause = Math.min(pause, MAX_PAUSE_S);
      return { result: { kind: 'reply', response: { status: 200, body: payloadBody([]) }, deliveries }, save: s };
    }

    s.held.push({ rid, node: this.d.nodeId, at: now });
    const deliveries = await this.drain(s, [], now, report);
    return { result: { kind: 'held', deliveries, wait: s.wait, userId: s.userId, after: s.sentCursor }, save: s };
  }

  /** Answer every held request with the same body (terminate, pause). */
  private answerAll(s: SessionState, body: string, now: number, record: boolean): Delivery[] {
    const out = s.held.map((h) => ({ node: h.node, rid: h.rid, body }));
    if (record) for (const h of [...s.held]) recordResponse(s, h.rid, body, now);
    s.held = [];
    return out;
  }

  /**
   * Decide which held requests to answer now: the oldest ones first (XEP-0124 answers in rid
   * order), with whatever is waiting (queued stanzas, new stream events, ephemeral events), and
   * empty ones while more than `hold` are held. Polling sessions (wait 0) are answered at once.
   */
  private async drain(s: SessionState, extra: StreamEvent[], now: number, report: { report: number; time: number } | null = null): Promise<Delivery[]> {
    const out: Delivery[] = [];
    if (!s.held.length) return out;
    let { stanzas, cursor } = await this.collect(s, extra, now);
    while (s.held.length && (stanzas.length || s.held.length > s.hold || s.wait === 0 || report)) {
      const h = s.held[0]!;
      const attrs: Record<string, string | number | undefined> = { ack: responseAck(s, h.rid) };
      if (report) {
        attrs.report = report.report;
        attrs.time = report.time;
        report = null;
      }
      const body = payloadBody(stanzas, attrs);
      s.lastExchangeEmpty = stanzas.length === 0;
      recordResponse(s, h.rid, body, now, cursor);
      out.push({ node: h.node, rid: h.rid, body });
      stanzas = [];
      cursor = undefined;
    }
    return out;
  }

  /** Everything waiting for the client: queued stanzas, then stream events after sentCursor. */
  private async collect(s: SessionState, extra: StreamEvent[], now: number): Promise<{ stanzas: string[]; cursor: number | undefined }> {
    const stanzas = s.outq.splice(0, s.outq.length);
    let cursor: number | undefined;
    const me = principalOf(s);
    if (me && s.available && s.auth === 'bound' && s.sentCursor !== null) {
      const batch = await readFrom(this.d.core.streams, this.d.lot, me, s.sentCursor, this.d.lot.head(me.id));
      const next = decodeCursor(batch.cursor);
      if (batch.events.length) stanzas.push(...(await this.xmpp.render(s, me, batch.events, now)));
      if (next !== null && next > s.sentCursor) {
        s.sentCursor = next;
        cursor = next;
      }
    }
    if (me && extra.length) stanzas.push(...(await this.xmpp.render(s, me, extra, now)));
    return { stanzas, cursor };
  }

  /** The user's stream moved (or an ephemeral event came): answer the oldest held request with it. */
  private async flush(sid: string, extra: StreamEvent[]): Promise<void> {
    try {
      const deliveries = await this.sessions.update(sid, async (s) => {
        if (!s || !s.held.length) return { result: [] as Delivery[], save: null };
        const now = this.now();
        const hadCursor = s.sentCursor;
        const out = await this.drain(s, extra, now);
        return { result: out, save: out.length || s.sentCursor !== hadCursor ? s : null };
      });
      this.holds.send(sid, deliveries);
    } catch (err) {
      this.log.warn({ err, session: sidTag(sid) }, 'flush failed');
    }
  }
}
