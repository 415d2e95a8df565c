/**
 * The BOSH connection manager: one request in, decisions under the session lock, answers out.
 *
 * Knows nothing of HTTP (the router hands it a string and a reply function). A request is
 * processed in three steps: (1) under the session lock, apply the XEP-0124 rules, run the
 * payload's stanzas against the core, add the request to `held` and decide which held requests to
 * answer (the answer bodies are recorded in the shared state for replay before anything is sent);
 * (2) after the lock, send the answers: to a local request directly, to another node's through
 * its Bus channel; (3) if this request stays held, park it in the parking lot until the user's
 * stream moves, `wait` runs out or the node shuts down.
 *
 * Nothing an answer carries exists only in memory: a node killed with held requests loses the
 * HTTP connections, the client retries the rid elsewhere, and the retry is answered from the
 * shared state (replay, or held again). Events are confirmed to the core only when the client
 * acknowledges the response that carried them.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Bus } from '../../bus/bus.js';
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import { AppError } from '../../core/errors.js';
import { decodeCursor } from '../../core/streams.js';
import type { Store } from '../../store/store.js';
import type { ParkingLot } from '../parking.js';
import { readFrom } from '../reading.js';
import { creationBody, payloadBody, recoverable, terminal, terminateAck, type BoshResponse, type TerminalCondition } from './body.js';
import {
  applyAck, BOSH_NS, classifyRid, createSession, isInactive, MAX_OUTQ, MAX_PAUSE_S, negotiate, newSid, overactivity,
  parseRid, pruneHeld, recordResponse, reportFor, responseAck, track, type SessionState,
} from './session.js';
import { LockLost, LockTimeout, SessionStore, type Outcome } from './store.js';
import {
  CONTACT_RESOURCE, decodePlain, NS, parseStanza, postAuthFeatures, preAuthFeatures, renderEvent, rosterItem, stanzaError,
  type Command, type ParleyEvent, type Target,
} from './stanzas.js';
import { childElements, el, parseXml, serialize, XmlError, type XmlElement } from './xml.js';

/**
 * The abort reason of a hold that was answered: a constant, since abort() without one builds a
 * DOMException with a stack trace per call (2% of a BOSH node's CPU under load).
 */
const ANSWERED = Object.freeze({ answered: true });

/** What the manager needs from the rest of Parley. */
export interface BoshDeps {
  core: Core;
  store: Store;
  lot: ParkingLot;
  bus: Bus;
  nodeId: string;
  domain: string;
  log: Logger;
  now?: () => number;
}

/** Where a request came from (the router knows HTTP; the manager only this). */
export interface Origin {
  /** The client's address, for the per-address limits (session creation, SASL). */
  address: string;
}

/** Where the router sends the answer. Called exactly once per request. */
export type Reply = (r: BoshResponse) => void;

/** An answer decided under the lock, sent after it. */
interface Delivery {
  node: string;
  rid: number;
  body: string;
}

/** What one locked step decided for the request that triggered it. */
type Step =
  | { kind: 'reply'; response: BoshResponse; deliveries?: Delivery[] }
  | { kind: 'early' }
  | { kind: 'held'; deliveries: Delivery[]; wait: number; userId: number | null; after: number | null };

/** A request this node holds. */
interface LocalHold {
  sid: string;
  rid: number;
  reply: Reply;
  done: boolean;
  ctrl: AbortController;
}

/**
 * One body carries at most this many stanzas. A client sends a handful per request (Converse.js:
 * a message and its chat state); one body once carried 300 messages, 4.5 s of work under a 3 s
 * session lock. More is refused as a policy violation before any of them is run.
 */
export const MAX_STANZAS_PER_BODY = 50;
/**
 * Failed SASL attempts per session before the stream ends (RFC 6120 §6.4.5: allow a
 * configurable number of retries, at least 2 and at most 5, then a policy-violation stream error).
 */
export const MAX_AUTH_FAILURES = 3;
/** A sid in the logs: a tag that tells sessions apart without being the session's key. */
export function sidTag(sid: string): string {
  return createHash('sha256').update(`log:${sid}`).digest('hex').slice(0, 12);
}
/** Conversation kinds never change: cache them per node (bounded). */
const KIND_CACHE_MAX = 50_000;
/** Direct conversation ids per (user, peer), per node (bounded). */
const DIRECT_CACHE_MAX = 50_000;
/**
 * Answer held requests 1.5 s before `wait` ends: the parking lot's timer wheel turns every 250 ms,
 * a busy event loop adds its lag, and `wait` is a promise to the client (and to Heroku's 30 s
 * router) that must not be overrun. (It was 500 ms; the Heroku test had only ~0.3 s of slack.)
 */
const HOLD_MARGIN_MS = 1_500;

/**
 * A session is one device: its own sent message, alone, does not wake its held request at once
 * (the parking lot defers it, see ECHO_DEFER_MS there). Derived from the sid, not the sid itself,
 * since the tag travels in wake-ups on the bus.
 */
function deviceOf(sid: string): string {
  return createHash('sha256').update(`bosh:${sid}`).digest('hex').slice(0, 16);
}
/** How often a request that arrived before the gap below it re-checks the window. */
const EARLY_POLL_MS = 10;

const STREAMS_NS = 'urn:ietf:params:xml:ns:xmpp-streams';

/** The BOSH connection manager of one node. */
export class BoshManager {
  private readonly sessions: SessionStore;
  private readonly holds = new Map<string, LocalHold>();
  private readonly kinds = new Map<string, 'direct' | 'group'>();
  private readonly directs = new Map<string, string>();
  private readonly sidUser = new Map<string, number>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly channel: string;
  private ready: Promise<void> | null = null;
  private readonly onNodeMessage = (payload: string) => this.fromOtherNode(payload);

  constructor(private readonly d: BoshDeps) {
    this.sessions = new SessionStore(d.bus);
    this.log = d.log.child({ module: 'bosh' });
    this.now = d.now ?? Date.now;
    this.channel = `bosh:n:${d.nodeId}`;
  }

  /** Subscribe this node's channel (answers decided on other nodes). Idempotent. */
  start(): Promise<void> {
    this.ready ??= this.d.bus.subscribe(this.channel, this.onNodeMessage).catch((err: unknown) => {
      this.ready = null;
      throw err;
    });
    return this.ready;
  }

  /** Stop listening; held requests are answered through the parking lot's shutdown. */
  async stop(): Promise<void> {
    for (const h of [...this.holds.values()]) void this.expire(h.sid, h.rid);
    await this.d.bus.unsubscribe(this.channel, this.onNodeMessage).catch(() => undefined);
  }

  /** Requests held on this node now. */
  get heldCount(): number {
    return this.holds.size;
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
    const key = `${sid} ${rid}`;
    const previous = this.holds.get(key);
    const superseded = previous && !previous.done ? previous : undefined;
    // The same rid again on this node: the client (or a proxy retrying) gave up on the first
    // connection, or two requests of one made-up sid met. This one takes over, and its answer
    // goes to both: a connection left open with no answer only ends when the proxy cuts it.
    const both: Reply = superseded ? (r) => (superseded.reply(r), reply(r)) : reply;
    const hold: LocalHold = { sid, rid, reply: both, done: false, ctrl: new AbortController() };
    this.holds.set(key, hold);
    if (superseded) {
      superseded.done = true;
      superseded.ctrl.abort(ANSWERED);
    }
    let parked = false;
    try {
      const deadline = this.now() + 30_000;
      for (;;) {
        const step = await this.sessions.update(sid, (s) => this.step(s, body, rid, origin));
        if (step.kind === 'early') {
          // 30 s at most for the gap to fill; then the recoverable error makes the client resend.
          if (this.now() > deadline || hold.done) return this.finish(hold, recoverable());
          await new Promise((r) => setTimeout(r, EARLY_POLL_MS));
          continue;
        }
        if (step.kind === 'reply') {
          this.send(sid, step.deliveries ?? []);
          return this.finish(hold, step.response);
        }
        this.send(sid, step.deliveries);
        if (hold.done) return;
        parked = true;
        if (step.userId !== null && userId === null) {
          // Authenticated during this very request: park in the lot from now on.
          userId = step.userId;
          this.rememberUser(sid, userId);
          await this.d.lot.enter(userId);
        }
        await this.park(hold, step.wait, userId, step.after);
        return;
      }
    } finally {
      if (userId !== null) this.d.lot.leave(userId);
      if (!parked && !hold.done) hold.done = true;
      if (this.holds.get(key) === hold) this.holds.delete(key);
    }
  }

  private finish(hold: LocalHold, r: BoshResponse): void {
    if (hold.done) return;
    hold.done = true;
    hold.reply(r);
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
    const me = this.principal(s);
    if (confirmed !== null && me) await this.d.core.streams.acknowledge(me, confirmed);
    s.lastRid = rid;
    s.lastRequestAt = now;
    s.pause = null;
    if (me) this.d.core.presence.touch(me.id);

    if (restart) {
      if (s.auth === 'none') return end('bad-request', legacy);
      this.queue(s, serialize(postAuthFeatures()));
    }
    let auths = 0;
    for (const st of stanzas) {
      // One SASL attempt per request: each costs a password hash, and a body once carried 590.
      const fatal = st.local === 'auth' && ++auths > 1 ? 'policy-violation' : await this.command(s, st, origin);
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

  private principal(s: SessionState): Principal | null {
    return s.userId !== null && s.name !== null ? { id: s.userId, name: s.name, device: deviceOf(s.sid) } : null;
  }

  private queue(s: SessionState, stanza: string): void {
    s.outq.push(stanza);
  }

  /**
   * Decide which held requests to answer now: the oldest ones first (XEP-0124 answers in rid
   * order), with whatever is waiting (queued stanzas, new stream events, ephemeral events), and
   * empty ones while more than `hold` are held. Polling sessions (wait 0) are answered at once.
   */
  private async drain(s: SessionState, extra: ParleyEvent[], now: number, report: { report: number; time: number } | null = null): Promise<Delivery[]> {
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
  private async collect(s: SessionState, extra: ParleyEvent[], now: number): Promise<{ stanzas: string[]; cursor: number | undefined }> {
    const stanzas = s.outq.splice(0, s.outq.length);
    let cursor: number | undefined;
    const me = this.principal(s);
    if (me && s.available && s.auth === 'bound' && s.sentCursor !== null) {
      const batch = await readFrom(this.d.core.streams, this.d.lot, me, s.sentCursor, this.d.lot.head(me.id));
      const next = decodeCursor(batch.cursor);
      const events = batch.events as ParleyEvent[];
      if (events.length) stanzas.push(...(await this.render(s, me, events, now)));
      if (next !== null && next > s.sentCursor) {
        s.sentCursor = next;
        cursor = next;
      }
    }
    if (me && extra.length) stanzas.push(...(await this.render(s, me, extra, now)));
    return { stanzas, cursor };
  }

  private async render(s: SessionState, me: Principal, events: ParleyEvent[], now: number): Promise<string[]> {
    const unknown = new Set<string>();
    for (const ev of events) {
      const conv =
        ev.type === 'message' ? (ev as { message: { conversation: string } }).message.conversation
        : ev.type === 'receipt' || ev.type === 'typing' ? (ev as { conversation: string }).conversation
        : undefined;
      if (typeof conv === 'string' && !this.kinds.has(conv)) unknown.add(conv);
      if (ev.type === 'conversation') {
        const c = (ev as { conversation: { id: string; kind: 'direct' | 'group' } }).conversation;
        this.cacheKind(c.id, c.kind);
      }
    }
    if (unknown.size) for (const [id, kind] of await this.d.core.messaging.kindsOf([...unknown])) this.cacheKind(id, kind);
    const ctx = {
      domain: this.d.domain,
      me: `${me.name}@${this.d.domain}/${s.resource ?? ''}`,
      myName: me.name,
      kindOf: (c: string) => this.kinds.get(c),
      peerOf: () => undefined,
      now,
    };
    return events.flatMap((ev) => renderEvent(ev, s, ctx).map(serialize));
  }

  private cacheKind(id: string, kind: 'direct' | 'group'): void {
    if (this.kinds.size >= KIND_CACHE_MAX) this.kinds.clear();
    this.kinds.set(id, kind);
  }

  /** Run one stanza. Returns a stream error condition when the stream must end. */
  private async command(s: SessionState, st: XmlElement, origin: Origin): Promise<string | null> {
    const cmd = parseStanza(st, this.d.domain);
    const me = this.principal(s);
    const jid = me ? `${me.name}@${this.d.domain}${s.resource ? `/${s.resource}` : ''}` : '';
    if (cmd.kind !== 'auth' && !me) return 'not-authorized'; // RFC 6120 §6.4: nothing before SASL
    if (cmd.kind === 'auth') return this.auth(s, cmd.mechanism, cmd.data, origin);
    try {
      // Each stanza spends the user's request budget, as a JSON API request does.
      this.d.core.limits.request(me!.id);
      await this.run(s, cmd, me, jid);
    } catch (err) {
      const condition = err instanceof AppError ? appErrorCondition(err) : 'internal-server-error';
      if (!(err instanceof AppError)) this.log.error({ err }, 'stanza failed');
      if (cmd.kind !== 'ignore' && cmd.kind !== 'presence') {
        this.queue(s, serialize(stanzaError(st, condition, condition === 'internal-server-error' ? 'wait' : 'cancel', jid, this.d.domain)));
      }
    }
    return null;
  }

  private async run(s: SessionState, cmd: Command, me: Principal | null, jid: string): Promise<void> {
    const core = this.d.core;
    const result = (id: string, ...children: XmlElement[]) =>
      this.queue(s, serialize(el('iq', { xmlns: NS.client, type: 'result', id, to: jid || undefined, from: this.d.domain }, ...children)));
    switch (cmd.kind) {
      case 'auth':
        return; // handled by command()
      case 'bind': {
        if (s.auth !== 'authed') {
          this.queue(s, serialize(el('iq', { xmlns: NS.client, type: 'error', id: cmd.id }, el('error', { type: 'cancel' }, el('not-allowed', { xmlns: NS.stanzas })))));
          return;
        }
        s.resource = /^[\x21-\x7e]{1,64}$/.test(cmd.resource) ? cmd.resource : `parley-${Math.random().toString(36).slice(2, 10)}`;
        s.auth = 'bound';
        this.queue(s, serialize(el('iq', { xmlns: NS.client, type: 'result', id: cmd.id }, el('bind', { xmlns: NS.bind }, el('jid', {}, `${me!.name}@${this.d.domain}/${s.resource}`)))));
        return;
      }
      case 'session':
      case 'ping':
        return result(cmd.id);
      case 'disco':
        return result(
          cmd.id,
          el('query', { xmlns: NS.discoInfo }, el('identity', { category: 'server', type: 'im', name: 'Parley' }),
            ...[NS.discoInfo, NS.ping, NS.receipts, NS.markers, NS.chatstates].map((v) => el('feature', { var: v }))),
        );
      case 'roster': {
        const contacts = await core.contacts.of(me!);
        return result(cmd.id, el('query', { xmlns: NS.roster }, ...contacts.map((c) => rosterItem(c.name, this.d.domain))));
      }
      case 'send': {
        const conversation = await this.conversationOf(me!, cmd.to);
        const { message } = await core.messaging.send(me!, conversation, { text: cmd.text, clientId: cmd.id });
        if (cmd.id && (cmd.receipt || cmd.markable)) {
          track(s, { conversation, seq: message.seq, id: cmd.id, receipt: cmd.receipt, markable: cmd.markable });
        }
        return;
      }
      case 'typing':
        return core.messaging.typing(me!, await this.conversationOf(me!, cmd.to));
      case 'displayed': {
        const seen = s.seen.find(([id]) => id === cmd.id);
        if (seen) await core.messaging.markRead(me!, seen[1], seen[2]);
        return;
      }
      case 'presence': {
        if (!cmd.available) {
          s.available = false;
          return;
        }
        if (!s.available) {
          s.available = true;
          // From the oldest event no device of mine has confirmed: offline messages arrive now.
          const start = await core.streams.start(me!, undefined);
          s.sentCursor = Math.max(start, s.sentCursor ?? 0);
          s.cursor = Math.max(start, s.cursor ?? 0);
          // contacts who do not share their presence with me show as offline
          for (const c of await core.contacts.of(me!)) {
            if (c.online) {
              this.queue(s, serialize(el('presence', { xmlns: NS.client, from: `${c.name}@${this.d.domain}/${CONTACT_RESOURCE}`, to: jid })));
            }
          }
        }
        return;
      }
      case 'error':
        this.queue(s, serialize(stanzaError(cmd.stanza, cmd.condition, cmd.type, jid, this.d.domain)));
        return;
      case 'ignore':
        return;
    }
  }

  /**
   * SASL PLAIN through the one login rule (the JSON login's counters: failures over BOSH and over
   * /api/login add up). Returns a stream error once the session failed MAX_AUTH_FAILURES times.
   */
  private async auth(s: SessionState, mechanism: string, data: string, origin: Origin): Promise<string | null> {
    const fail = (condition: string): string | null => {
      this.queue(s, serialize(el('failure', { xmlns: NS.sasl }, el(condition, {}))));
      s.authFailures = (s.authFailures ?? 0) + 1;
      return s.authFailures >= MAX_AUTH_FAILURES ? 'policy-violation' : null;
    };
    if (s.auth !== 'none') return fail('aborted');
    if (mechanism !== 'PLAIN') return fail('invalid-mechanism');
    const creds = decodePlain(data, this.d.domain);
    if (!creds) return fail('incorrect-encoding');
    let user: Principal;
    try {
      user = await this.d.core.logins.verify(creds.name, creds.password, origin.address);
    } catch (err) {
      if (!(err instanceof AppError)) throw err;
      return fail(err.status === 429 ? 'temporary-auth-failure' : 'not-authorized');
    }
    s.auth = 'authed';
    s.userId = user.id;
    s.name = user.name;
    this.queue(s, serialize(el('success', { xmlns: NS.sasl })));
    return null;
  }

  /** The conversation a message goes to: the direct one with a user (created on first use), or a group. */
  private async conversationOf(me: Principal, to: Target): Promise<string> {
    if (to.kind === 'group') return to.conversation;
    const key = `${me.id} ${to.name}`;
    const cached = this.directs.get(key);
    if (cached) return cached;
    await this.d.core.limits.conversation(me.id);
    const { id } = await this.d.core.messaging.directId(me, to.name);
    if (this.directs.size >= DIRECT_CACHE_MAX) this.directs.clear();
    this.directs.set(key, id);
    this.cacheKind(id, 'direct');
    return id;
  }

  /** Send decided answers: local ones now, others through their node's channel. */
  private send(sid: string, deliveries: readonly Delivery[]): void {
    for (const d of deliveries) {
      if (d.node === this.d.nodeId) this.deliverLocal(sid, d.rid, d.body);
      else {
        this.d.bus.publish(`bosh:n:${d.node}`, JSON.stringify({ sid, rid: d.rid, body: d.body })).catch((err: unknown) => {
          // The answer is in the shared buffer: the holder finds it when its wait ends, or the client retries.
          this.log.warn({ err, node: d.node }, 'cross-node answer publish failed');
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
      this.log.warn('malformed cross-node answer');
    }
  }

  /**
   * Park a held request until it is answered (here or by another node), the user's stream moves
   * (then flush), an ephemeral event arrives, `wait` runs out or the node shuts down (then expire).
   */
  private async park(hold: LocalHold, waitS: number, userId: number | null, after: number | null): Promise<void> {
    const deadline = this.now() + Math.max(0, waitS * 1000 - HOLD_MARGIN_MS);
    if (userId === null) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.max(0, deadline - this.now()));
        hold.ctrl.signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        }, { once: true });
      });
      if (!hold.done) await this.expire(hold.sid, hold.rid);
      return;
    }
    let pos = after ?? this.d.lot.head(userId);
    while (!hold.done) {
      const outcome = await this.d.lot.wait(userId, pos, deadline - this.now(), hold.ctrl.signal, deviceOf(hold.sid));
      if (hold.done) return;
      if (outcome.kind === 'wake') {
        pos = Math.max(pos, this.d.lot.head(userId));
        await this.flush(hold.sid, []);
      } else if (outcome.kind === 'ephemeral') {
        await this.flush(hold.sid, [outcome.event as ParleyEvent]);
      } else {
        await this.expire(hold.sid, hold.rid);
        return;
      }
    }
  }

  /** The user's stream moved (or an ephemeral event came): answer the oldest held request with it. */
  private async flush(sid: string, extra: ParleyEvent[]): Promise<void> {
    try {
      const deliveries = await this.sessions.update(sid, async (s) => {
        if (!s || !s.held.length) return { result: [] as Delivery[], save: null };
        const now = this.now();
        const hadCursor = s.sentCursor;
        const out = await this.drain(s, extra, now);
        return { result: out, save: out.length || s.sentCursor !== hadCursor ? s : null };
      });
      this.send(sid, deliveries);
    } catch (err) {
      this.log.warn({ err, session: sidTag(sid) }, 'flush failed');
    }
  }

  /** A held request's wait is over: answer it empty, unless it was answered meanwhile (then resend that). */
  private async expire(sid: string, rid: number): Promise<void> {
    try {
      const body = await this.sessions.update(sid, (s) => {
        if (!s) return { result: terminal('item-not-found', false).body, save: null };
        const buffered = s.buffer.find((b) => b.rid === rid);
        if (!s.held.some((h) => h.rid === rid)) return { result: buffered?.body ?? payloadBody([]), save: null };
        const b = payloadBody([], { ack: responseAck(s, rid) });
        s.lastExchangeEmpty = true;
        recordResponse(s, rid, b, this.now());
        return { result: b, save: s };
      });
      this.deliverLocal(sid, rid, body);
    } catch (err) {
      this.log.warn({ err, session: sidTag(sid), rid }, 'expire failed');
      this.deliverLocal(sid, rid, recoverable().body);
    }
  }
}

/** Map a core error to an XMPP stanza error condition (RFC 6120 §8.3.3). */
function appErrorCondition(err: AppError): string {
  switch (err.status) {
    case 400: return 'bad-request';
    case 401: return 'not-authorized';
    case 403: return 'forbidden';
    case 404: return 'item-not-found';
    case 409: return 'conflict';
    case 413: return 'not-acceptable';
    case 429: return 'resource-constraint';
    default: return 'internal-server-error';
  }
}

