/**
 * The BOSH session as data: what lives in the shared store (so any node can answer any request of
 * a sid) and the XEP-0124 rules as pure functions over it. No I/O, no clock: `now` is passed in,
 * so every rule is unit-tested without waiting.
 */
import { createHash, randomBytes } from 'node:crypto';

/** The BOSH namespace of every <body/>. */
export const BOSH_NS = 'http://jabber.org/protocol/httpbind';
/** XEP-0206's namespace for xmpp:version and xmpp:restart. */
export const XBOSH_NS = 'urn:xmpp:xbosh';

/** The protocol version we implement; the answer is the lower of this and the client's. */
export const SERVER_VER = '1.11';
/** 25 s: Heroku's router drops a request that sends no byte for 30 s; 5 s of margin for a slow answer. */
export const MAX_WAIT_S = 25;
/** Held requests per session. 2: browsers allow about 6 connections per host and a page has other needs. */
export const MAX_HOLD = 2;
/**
 * 2 s: the shortest polling interval for empty requests that arrive while nothing is held. Short
 * enough that no real client trips it by accident (Strophe never sends an empty request while one
 * is held), long enough to stop a tight loop.
 */
export const POLLING_S = 2;
/**
 * 60 s with nothing held before the session is dropped. XEP-0124 recommends "a little more than a
 * comfortable round trip"; 60 s also covers a mobile browser stalling for a while and lines up
 * with the presence timeout (about 60 s), so a vanished BOSH client goes offline once.
 */
export const INACTIVITY_S = 60;
/** 120 s: longest `pause` a client may ask for (a page navigation, a laptop lid). */
export const MAX_PAUSE_S = 120;
/** Replayable responses kept beyond `requests` for clients that use acks but lag behind. */
export const MAX_BUFFERED = 8;
/** Stanzas waiting for a request to carry them; past this the client is not reading and is cut off. */
export const MAX_OUTQ = 200;

/** A request that has not been answered yet, wherever it is physically held. */
export interface HeldRef {
  rid: number;
  /** The node holding the HTTP request. */
  node: string;
  /** When it arrived (ms). */
  at: number;
}

/** A response kept for replay (byte-identical) until acknowledged and out of the window. */
export interface Buffered {
  rid: number;
  body: string;
  /** When it was sent (ms), for `report`/`time`. */
  at: number;
  /** The stream position after the events this response carried, when it carried any. */
  cursor?: number;
}

/** A message this session sent that asked for a receipt (XEP-0184) or is markable (XEP-0333). */
export interface Tracked {
  conversation: string;
  seq: number;
  /** The stanza id the client gave it. */
  id: string;
  /** Peer bare JID to report from, for direct chats; null for groups. */
  receipt: boolean;
  markable: boolean;
}

/** Everything about a session that every node must see. Serialized as JSON in the shared store. */
export interface SessionState {
  sid: string;
  /** The client's `ver`, or null for a legacy client (which gets HTTP error codes). */
  ver: string | null;
  wait: number;
  hold: number;
  requests: number;
  inactivity: number;
  /** Client asked for acknowledgements (`ack='1'` at creation). */
  acks: boolean;
  /** Highest rid processed, in order. */
  lastRid: number;
  /** Unanswered requests, oldest rid first. */
  held: HeldRef[];
  /** Responses kept for replay, oldest first. */
  buffer: Buffered[];
  /** Highest rid whose response the client has confirmed. */
  clientAck: number;
  lastRequestAt: number;
  lastResponseAt: number;
  /** Whether the last answered request carried nothing either way (the polling rule). */
  lastExchangeEmpty: boolean;
  /** Inactivity allowed until the next request, after a `pause` (seconds). */
  pause: number | null;
  /** XMPP stream state. */
  auth: 'none' | 'authed' | 'bound';
  userId: number | null;
  name: string | null;
  resource: string | null;
  /** Initial presence sent: the resource is available and gets messages (RFC 6121 §8.5.2). */
  available: boolean;
  /** The stream position the client has confirmed (acknowledged to the core). */
  cursor: number | null;
  /** The position after the last events put in a response (not yet confirmed). */
  sentCursor: number | null;
  /** Serialized stanzas waiting for the next response (IQ results, SASL, features). */
  outq: string[];
  /** Sent messages awaiting a receipt or a displayed marker. */
  tracked: Tracked[];
  /** Failed SASL attempts in this session (absent in sessions saved before it existed). */
  authFailures?: number;
  /** Recently delivered stanza id → [conversation, seq], to turn a `displayed` marker into read. */
  seen: Array<[id: string, conversation: string, seq: number]>;
  /** XEP-0280 carbons enabled (absent: off, as in sessions saved before carbons existed). */
  carbons?: boolean;
  /** Ids of the last messages this session sent (carbons.ts leaves them out of its carbons). */
  sentIds?: string[];
}

/** Session creation parameters negotiated from the client's first body. */
export interface Negotiated {
  ver: string | null;
  wait: number;
  hold: number;
  requests: number;
  acks: boolean;
}

/** An unpredictable sid: 128 random bits, URL- and attribute-safe. */
export function newSid(): string {
  return randomBytes(16).toString('base64url');
}

/** A sid in the logs: a tag that tells sessions apart without being the session's key. */
export function sidTag(sid: string): string {
  return createHash('sha256').update(`log:${sid}`).digest('hex').slice(0, 12);
}

/**
 * A session is one device: its own sent message, alone, does not wake its held request at once
 * (the parking lot defers it, see ECHO_DEFER_MS there). Derived from the sid, not the sid itself,
 * since the tag travels in wake-ups on the bus.
 */
export function deviceOf(sid: string): string {
  return createHash('sha256').update(`bosh:${sid}`).digest('hex').slice(0, 16);
}

function parseIntAttr(v: string | undefined): number | null {
  if (v === undefined || !/^\d{1,16}$/.test(v)) return null;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : null;
}

/** A rid as XEP-0124 allows it (positive integer below 2^53), or null. */
export function parseRid(v: string | undefined): number | null {
  const n = parseIntAttr(v);
  return n !== null && n > 0 ? n : null;
}

/** Compare dotted versions ("1.6" < "1.11"). */
export function compareVer(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/** Negotiate creation attributes: wait clamped to 25 s whatever is asked, hold to MAX_HOLD. */
export function negotiate(attrs: Record<string, string>): Negotiated | { error: 'bad-request' } {
  const wait = parseIntAttr(attrs.wait);
  const hold = parseIntAttr(attrs.hold);
  if (attrs.wait !== undefined && wait === null) return { error: 'bad-request' };
  if (attrs.hold !== undefined && hold === null) return { error: 'bad-request' };
  const rawVer = attrs.ver;
  const ver = rawVer !== undefined && /^\d{1,3}\.\d{1,3}$/.test(rawVer) ? rawVer : rawVer === undefined ? null : SERVER_VER;
  const h = Math.min(hold ?? 1, MAX_HOLD);
  return {
    ver,
    wait: Math.min(wait ?? MAX_WAIT_S, MAX_WAIT_S),
    hold: h,
    requests: h + 1,
    acks: attrs.ack === '1',
  };
}

/** A fresh session after the creation request with rid `rid`. */
export function createSession(sid: string, rid: number, n: Negotiated, now: number): SessionState {
  return {
    sid,
    ver: n.ver,
    wait: n.wait,
    hold: n.hold,
    requests: n.requests,
    inactivity: INACTIVITY_S,
    acks: n.acks,
    lastRid: rid,
    held: [],
    buffer: [],
    clientAck: rid - 1,
    lastRequestAt: now,
    lastResponseAt: now,
    lastExchangeEmpty: false,
    pause: null,
    auth: 'none',
    userId: null,
    name: null,
    resource: null,
    available: false,
    cursor: null,
    sentCursor: null,
    outq: [],
    tracked: [],
    seen: [],
  };
}

/** The version we answer with: the lower of ours and the client's. */
export function answerVer(s: Pick<SessionState, 'ver'>): string {
  return s.ver && compareVer(s.ver, SERVER_VER) < 0 ? s.ver : SERVER_VER;
}

/** Where a rid falls relative to the window. */
export type RidClass =
  | { kind: 'next' }
  /** Arrived before the gap below it is filled: wait for it. */
  | { kind: 'early' }
  /** Seen before and its response is buffered: replay it. */
  | { kind: 'replay'; body: string }
  /** Seen before and still held (the client retried, e.g. after a node died): hold it again. */
  | { kind: 'retry' }
  /** Outside the window, or seen and no longer buffered: item-not-found. */
  | { kind: 'invalid' };

/** Classify an incoming rid (XEP-0124 §14.2–14.3). The window is `requests` wide above lastRid. */
export function classifyRid(s: SessionState, rid: number): RidClass {
  if (rid <= s.lastRid) {
    const b = s.buffer.find((x) => x.rid === rid);
    if (b) return { kind: 'replay', body: b.body };
    if (s.held.some((h) => h.rid === rid)) return { kind: 'retry' };
    return { kind: 'invalid' };
  }
  if (rid === s.lastRid + 1) return { kind: 'next' };
  if (rid <= s.lastRid + s.requests) return { kind: 'early' };
  return { kind: 'invalid' };
}

/** True when the session has outlived its inactivity period (nothing held, no request for too long). */
export function isInactive(s: SessionState, now: number): boolean {
  if (s.held.length) return false;
  const limit = (s.pause ?? s.inactivity) * 1000;
  return now - Math.max(s.lastResponseAt, s.lastRequestAt) > limit;
}

/** How long the shared store should keep the session: its inactivity plus the longest hold, plus slack. */
export function storeTtlMs(s: SessionState): number {
  return ((s.pause ?? s.inactivity) + s.wait + 10) * 1000;
}

/** What a new (in-order) request looks like, for the overactivity rules. */
export interface RequestShape {
  rid: number;
  /** No payload, no restart. */
  empty: boolean;
  pause: boolean;
  terminate: boolean;
}

/**
 * XEP-0124 §12 and §13: too many simultaneous requests, or empty requests too often.
 * Returns 'policy-violation' when the session must end, else null. Called before the request joins `held`.
 */
export function overactivity(s: SessionState, req: RequestShape, now: number): 'policy-violation' | null {
  if (req.pause || req.terminate) return null;
  const unanswered = s.held.length + 1;
  if (unanswered > s.requests) return 'policy-violation';
  const tooSoon = now - s.lastRequestAt < POLLING_S * 1000;
  // All request slots used, nothing answered, and the newest one empty and hot on the heels of the last.
  if (unanswered === s.requests && req.empty && tooSoon && s.hold > 0) return 'policy-violation';
  // Polling session: two empty requests in a row, the first answered empty, within `polling`.
  if (!s.held.length && req.empty && s.lastExchangeEmpty && now - s.lastResponseAt < POLLING_S * 1000 && s.hold === 0) {
    return 'policy-violation';
  }
  return null;
}

/**
 * Apply the client's acknowledgement carried by request `rid` (explicit `ack`, or implicit: a client
 * without acks has received everything below the rid it sends next, or it would resend it).
 * Returns the cursor the core may now treat as delivered, if it moved.
 */
export function applyAck(s: SessionState, rid: number, ackAttr: number | null): number | null {
  const ack = s.acks && ackAttr !== null ? Math.min(ackAttr, rid - 1) : rid - 1;
  if (ack <= s.clientAck) return null;
  s.clientAck = ack;
  let moved: number | null = null;
  for (const b of s.buffer) if (b.rid <= ack && b.cursor !== undefined) moved = b.cursor;
  trimBuffer(s);
  if (moved !== null && (s.cursor === null || moved > s.cursor)) {
    s.cursor = moved;
    return moved;
  }
  return null;
}

/** Keep unacknowledged responses (bounded) and always the last `requests` ones (XEP-0124 §14.3). */
export function trimBuffer(s: SessionState): void {
  const keepFrom = s.buffer.length - s.requests;
  s.buffer = s.buffer.filter((b, i) => i >= keepFrom || b.rid > s.clientAck).slice(-Math.max(s.requests, MAX_BUFFERED));
}

/** Record the response to `rid` for replay. */
export function recordResponse(s: SessionState, rid: number, body: string, now: number, cursor?: number): void {
  s.held = s.held.filter((h) => h.rid !== rid);
  s.buffer = s.buffer.filter((b) => b.rid !== rid);
  s.buffer.push(cursor === undefined ? { rid, body, at: now } : { rid, body, at: now, cursor });
  s.buffer.sort((a, b) => a.rid - b.rid);
  s.lastResponseAt = now;
  trimBuffer(s);
}

/**
 * XEP-0124 §9.2: when the client's ack is behind a response sent a while ago, say so at once.
 * Returns the rid to report and how long ago it was sent.
 */
export function reportFor(s: SessionState, ackAttr: number | null, now: number): { report: number; time: number } | null {
  if (!s.acks || ackAttr === null) return null;
  const missing = s.buffer.find((b) => b.rid === ackAttr + 1);
  // 1 s: a response sent less than that ago is probably still on the wire.
  if (!missing || now - missing.at < 1000) return null;
  return { report: missing.rid, time: now - missing.at };
}

/** The `ack` attribute to put on a response to `rid`, when the client uses acks. */
export function responseAck(s: SessionState, rid: number): number | undefined {
  if (!s.acks) return undefined;
  return s.lastRid > rid ? s.lastRid : undefined;
}

/** Remember a delivered stanza id (bounded) so a later `displayed` marker can name it. */
export function rememberSeen(s: SessionState, id: string, conversation: string, seq: number): void {
  s.seen.push([id, conversation, seq]);
  // 64 ids: a marker names one of the last messages on screen; older ones fall back to the latest seq.
  if (s.seen.length > 64) s.seen.splice(0, s.seen.length - 64);
}

/** Track a sent message that wants a receipt or a marker (bounded: oldest dropped). */
export function track(s: SessionState, t: Tracked): void {
  s.tracked.push(t);
  // 100: receipts for older messages are not worth the session's memory.
  if (s.tracked.length > 100) s.tracked.splice(0, s.tracked.length - 100);
}

/**
 * A receipt event reached this session: which tracked ids it settles.
 * `delivered` settles every receipt-requested message up to `upTo`; `read` settles markers (and receipts).
 */
export function settle(s: SessionState, conversation: string, status: 'delivered' | 'read', upTo: number): { received: string[]; displayed: string | null } {
  const received: string[] = [];
  let displayed: string | null = null;
  const keep: Tracked[] = [];
  for (const t of s.tracked) {
    if (t.conversation !== conversation || t.seq > upTo) {
      keep.push(t);
      continue;
    }
    if (t.receipt) received.push(t.id);
    if (status === 'read') {
      if (t.markable) displayed = t.id;
      continue;
    }
    if (t.markable) keep.push({ ...t, receipt: false });
  }
  s.tracked = keep;
  return { received, displayed };
}

/**
 * Held requests whose holder should have answered long ago (its node died, or the client went
 * away): forget them, so they neither block inactivity nor count against `hold`. Returns their rids.
 */
export function pruneHeld(s: SessionState, now: number): number[] {
  // 10 s past `wait`: a live holder answers at `wait` on the dot; the rest is clock skew and slack.
  const limit = (s.wait + 10) * 1000;
  const gone = s.held.filter((h) => now - h.at > limit).map((h) => h.rid);
  if (gone.length) s.held = s.held.filter((h) => now - h.at <= limit);
  return gone;
}
