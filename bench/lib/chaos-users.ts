import { performance } from 'node:perf_hooks';
import type { NodeClient } from './client.js';
import { percentile } from './stats.js';
import { sleep } from './sleep.js';

/**
 * The chaos run's clients and their bookkeeping. A long-poll user behaves as public/parley.js
 * does: it holds one poll at a time passing its cursor back, retries a failed poll or send after
 * a full-jitter backoff (0.25–0.5 s, doubling), resends a failed message with the same client_id
 * until it is acknowledged, and shows a message once by id.
 */

export const PASSWORD = 'chaos password 1';
/** The poll's hold, seconds (the server allows up to 25; nginx waits 35). */
const POLL_WAIT_S = 20;
/** A send not answered within 10 s is given up and retried (the bound for answers during an outage). */
export const SEND_TIMEOUT_MS = 10_000;

/** parley.js's backoff: full jitter over 0.5 s doubling, capped at 30 s (here 8 s: the run is short). */
export function backoff(attempt: number): number {
  const cap = Math.min(8_000, 500 * 2 ** Math.min(attempt, 16));
  return Math.floor(cap / 2 + (Math.random() * cap) / 2);
}

/** docs/api.md: a 503 (or 429) says when to retry in Retry-After; without it, the backoff. Jitter of up to 20% keeps clients out of step. */
function retryDelay(attempt: number, retryAfterS: number | undefined): number {
  return retryAfterS === undefined ? backoff(attempt) : retryAfterS * 1000 * (1 + Math.random() * 0.2);
}

/** A fault and when it happened (ms since the start): `back` is when the service returned (for a kill, the kill). */
export type Fault = { name: string; start: number; back: number; rejoined?: number };

type SendRec = { from: string; to: string; first: number; ack?: number; bosh: boolean };
type Attempt = { start: number; end: number; status: string; bosh: boolean };

/** Everything the clients saw, on one clock (ms since t0). */
export class Ledger {
  t0 = performance.now();
  readonly sends = new Map<string, SendRec>();
  readonly attempts: Attempt[] = [];
  /** receiver → client_id → the distinct message ids shown for it. */
  private readonly shownIds = new Map<string, Map<string, Set<string>>>();
  /** receiver → when each new message was shown (ascending). */
  private readonly shownAt = new Map<string, number[]>();
  private readonly firstShown = new Map<string, number>();
  private readonly boshReceivers = new Set<string>();
  readonly pollFailures: number[] = [];
  readonly boshLost: number[] = [];
  boshReconnects = 0;
  redelivered = 0;
  refused: Record<string, number> = {};

  now(): number {
    return performance.now() - this.t0;
  }

  /** A user who receives messages (so their receiving can be timed after a fault). */
  receiver(name: string, bosh = false): void {
    if (bosh) this.boshReceivers.add(name);
    if (!this.shownAt.has(name)) this.shownAt.set(name, []);
    if (!this.shownIds.has(name)) this.shownIds.set(name, new Map());
  }

  sendStarted(clientId: string, from: string, to: string, bosh = false): void {
    this.sends.set(clientId, { from, to, first: this.now(), bosh });
  }

  attempt(start: number, status: string, bosh = false): void {
    this.attempts.push({ start, end: this.now(), status, bosh });
  }

  acked(clientId: string): void {
    const s = this.sends.get(clientId);
    if (s && s.ack === undefined) s.ack = this.now();
  }

  /** A BOSH send turned out to have failed after all (a stanza error came back): not acknowledged until resent. */
  unacked(clientId: string): void {
    const s = this.sends.get(clientId);
    if (s) delete s.ack;
  }

  /** A message arrived at `receiver`; its text starts with the sender's client_id. Returns whether it is new. */
  shown(receiver: string, messageId: string, text: string): boolean {
    const clientId = text.split(' ', 1)[0]!;
    if (!clientId.startsWith('ch-')) return false; // junk the malformed-request sender managed to send
    const byClient = this.shownIds.get(receiver)!;
    let ids = byClient.get(clientId);
    if (!ids) byClient.set(clientId, (ids = new Set()));
    if (ids.has(messageId)) {
      this.redelivered++;
      return false;
    }
    ids.add(messageId);
    const t = this.now();
    this.shownAt.get(receiver)!.push(t);
    if (!this.firstShown.has(clientId)) this.firstShown.set(clientId, t);
    return true;
  }

  /** Acknowledged messages their recipient has not shown yet. */
  missing(): number {
    let n = 0;
    for (const [clientId, s] of this.sends) if (s.ack !== undefined && !this.shownIds.get(s.to)?.has(clientId)) n++;
    return n;
  }

  /** What a fault cost: receiving resumed, sends answered and succeeding, failures in its window. */
  recovery(f: Fault) {
    let receiveResumeMs = 0;
    let boshReceiveResumeMs = 0;
    const perUser: Array<[string, number]> = [];
    for (const [name, times] of this.shownAt) {
      const next = times.find((t) => t >= f.back);
      const ms = next === undefined ? Infinity : next - f.back;
      perUser.push([name, Math.round(ms)]);
      if (this.boshReceivers.has(name)) boshReceiveResumeMs = Math.max(boshReceiveResumeMs, ms);
      else receiveResumeMs = Math.max(receiveResumeMs, ms);
    }
    perUser.sort((a, b) => b[1] - a[1]);
    const windowEnd = f.back + 5_000;
    const during = this.attempts.filter((a) => a.start >= f.start && a.start <= f.back);
    const slowestSendAnswerMs = Math.max(0, ...during.map((a) => a.end - a.start));
    const sendStatuses: Record<string, number> = {};
    for (const a of this.attempts) if (a.start >= f.start && a.start <= windowEnd) sendStatuses[a.status] = (sendStatuses[a.status] ?? 0) + 1;
    let sendResumeMs = 0;
    for (const s of this.sends.values()) {
      if (s.first <= f.back && (s.ack === undefined || s.ack > f.back)) sendResumeMs = Math.max(sendResumeMs, s.ack === undefined ? Infinity : s.ack - f.back);
    }
    return {
      name: f.name,
      receiveResumeMs: Math.round(receiveResumeMs),
      boshReceiveResumeMs: Math.round(boshReceiveResumeMs),
      slowestReceivers: perUser.slice(0, 3).map(([n, ms]) => `${n} ${ms} ms`),
      slowestSendAnswerMs: Math.round(slowestSendAnswerMs),
      sendResumeMs: Math.round(sendResumeMs),
      sendStatuses,
      pollFailures: this.pollFailures.filter((t) => t >= f.start && t <= windowEnd).length,
      boshSessionsLost: this.boshLost.filter((t) => t >= f.start && t <= windowEnd).length,
      ...(f.rejoined !== undefined ? { rejoinedMs: Math.round(f.rejoined - f.start) } : {}),
    };
  }

  /** The run's totals; `inFault` tells whether a time lies in a fault window (for the latency outside faults). */
  totals(inFault: (t: number) => boolean) {
    let acknowledged = 0;
    let boshAcknowledged = 0;
    let lost = 0;
    let last = 0;
    const lostIds: string[] = [];
    const latencies: number[] = [];
    for (const [clientId, s] of this.sends) {
      if (s.ack === undefined) continue;
      acknowledged++;
      if (s.bosh) boshAcknowledged++;
      last = Math.max(last, s.ack);
      const shown = this.firstShown.get(clientId);
      if (!this.shownIds.get(s.to)?.has(clientId)) {
        lost++;
        if (lostIds.length < 10) lostIds.push(`${clientId} ${s.bosh ? 'BOSH ' : ''}to ${s.to}, sent ${Math.round(s.first)}, acked ${Math.round(s.ack)}`);
      }
      else if (shown !== undefined && !inFault(s.first) && !inFault(shown)) latencies.push(shown - s.first);
    }
    let received = 0;
    let shownTwice = 0;
    const twiceIds: string[] = [];
    for (const [receiver, byClient] of this.shownIds) {
      for (const [clientId, ids] of byClient) {
        received++;
        if (ids.size > 1) {
          shownTwice++;
          if (twiceIds.length < 10) twiceIds.push(`${clientId} at ${receiver} as ${[...ids].join(', ')}`);
        }
      }
    }
    latencies.sort((a, b) => a - b);
    return {
      acknowledged,
      boshAcknowledged,
      unacknowledged: [...this.sends.values()].filter((s) => s.ack === undefined).length,
      received,
      lost,
      lostIds,
      shownTwice,
      twiceIds,
      redelivered: this.redelivered,
      retries: this.attempts.filter((a) => a.status !== '200' && a.status !== '201').length,
      refused: { ...this.refused },
      rate: acknowledged / Math.max(1, last / 1000),
      outside: { count: latencies.length, p50: percentile(latencies, 50), p99: percentile(latencies, 99) },
      pollFailures: this.pollFailures.length,
      boshSessionsLost: this.boshLost.length,
      boshReconnects: this.boshReconnects,
    };
  }
}

/** Someone this user can chat with: a name and, once paired, the direct conversation. */
export interface Peer {
  readonly name: string;
  conversation?: string;
}

/** A long-poll user of the JSON API, through the proxy. */
export class PollingUser implements Peer {
  token = '';
  conversation?: string;
  private partner?: string;
  private cursor: string | undefined;
  private polling = false;
  private sending = false;
  private sendLoop: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: NodeClient,
    private readonly ledger: Ledger,
    readonly name: string,
    private readonly intervalMs: number,
  ) {}

  /** Register (retrying what the network lost: a name already taken by our own first try is ours). */
  async register(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const r = await this.client.request('/api/register', { body: { name: this.name, password: PASSWORD }, timeoutMs: 20_000 }).catch(() => null);
      if (r?.status === 201) {
        this.token = r.body.token;
        return;
      }
      if (r?.status === 409) {
        const l = await this.client.request('/api/login', { body: { name: this.name, password: PASSWORD }, timeoutMs: 20_000 });
        if (l.status === 200) {
          this.token = l.body.token;
          return;
        }
      }
      if (attempt > 5) throw new Error(`could not register ${this.name}: ${r?.status} ${JSON.stringify(r?.body)}`);
      await sleep(backoff(attempt));
    }
  }

  /** Open the direct conversation with `other`; both chat in it from now on. */
  async pairWith(other: Peer): Promise<void> {
    const r = await this.client.request('/api/conversations', { token: this.token, body: { with: other.name }, timeoutMs: 20_000 });
    if (r.status !== 201 && r.status !== 200) throw new Error(`conversation ${this.name}–${other.name}: ${r.status} ${JSON.stringify(r.body)}`);
    this.conversation = r.body.conversation.id;
    other.conversation = this.conversation;
    this.partner = other.name;
    this.ledger.receiver(this.name);
    if (other instanceof PollingUser) {
      other.partner = this.name;
      this.ledger.receiver(other.name);
    }
  }

  /** Register as the sender of the junk: a token and a conversation of its own with `other`. */
  async registerVictim(other: Peer): Promise<{ token: string; conversation: string }> {
    await this.register();
    const r = await this.client.request('/api/conversations', { token: this.token, body: { with: other.name }, timeoutMs: 20_000 });
    return { token: this.token, conversation: r.body.conversation.id };
  }

  startPolling(): void {
    this.polling = true;
    void this.pollLoop();
  }

  stopPolling(): void {
    this.polling = false;
  }

  private async pollLoop(): Promise<void> {
    let failures = 0;
    while (this.polling) {
      let retryAfter: number | undefined;
      const q = new URLSearchParams({ wait: String(POLL_WAIT_S) });
      if (this.cursor) q.set('since', this.cursor);
      try {
        const r = await this.client.request(`/api/events?${q}`, { token: this.token, timeoutMs: (POLL_WAIT_S + 15) * 1000 });
        if (r.status === 200) {
          failures = 0;
          this.cursor = r.body.cursor;
          for (const e of r.body.events as Array<{ type: string; message?: { id: string; from: string; text: string } }>) {
            if (e.type === 'message' && e.message && e.message.from !== this.name) this.ledger.shown(this.name, e.message.id, e.message.text);
          }
          continue;
        }
        retryAfter = r.retryAfter;
        if (r.status === 400 && r.body?.error?.code === 'bad_cursor') this.cursor = undefined; // docs/api.md: poll again without one
        this.ledger.refused[`poll ${r.status}`] = (this.ledger.refused[`poll ${r.status}`] ?? 0) + 1;
      } catch (err) {
        const code = (err as { code?: string }).code ?? 'error';
        this.ledger.refused[`poll ${code}`] = (this.ledger.refused[`poll ${code}`] ?? 0) + 1;
      }
      if (!this.polling) return;
      this.ledger.pollFailures.push(this.ledger.now());
      await sleep(retryDelay(failures++, retryAfter));
    }
  }

  startSending(): void {
    if (!this.partner || !this.conversation) return;
    this.sending = true;
    this.sendLoop = this.sendMessages();
  }

  stopSending(): void {
    this.sending = false;
  }

  /** Resolves when the last message begun is acknowledged (or given up after 30 s of retries). */
  sendsSettled(): Promise<void> {
    return this.sendLoop;
  }

  private async sendMessages(): Promise<void> {
    let n = 0;
    while (this.sending) {
      const clientId = `ch-${this.name}-${++n}`;
      this.ledger.sendStarted(clientId, this.name, this.partner!);
      const begun = this.ledger.now();
      for (let attempt = 0; ; attempt++) {
        const start = this.ledger.now();
        let status: string;
        let retryAfter: number | undefined;
        try {
          const r = await this.client.request(`/api/conversations/${this.conversation}/messages`, {
            token: this.token,
            body: { text: `${clientId} from ${this.name}`, client_id: clientId },
            timeoutMs: SEND_TIMEOUT_MS,
          });
          status = String(r.status);
          retryAfter = r.retryAfter;
          if (r.status >= 400 && r.status < 500 && r.status !== 408 && r.status !== 429) {
            // Refused for good: a client bug, or the server's.
            this.ledger.attempt(start, status);
            this.ledger.refused[`send ${r.status} ${r.body?.error?.code}`] = (this.ledger.refused[`send ${r.status} ${r.body?.error?.code}`] ?? 0) + 1;
            break;
          }
        } catch (err) {
          status = (err as { code?: string }).code ?? 'error';
        }
        this.ledger.attempt(start, status);
        if (status === '200' || status === '201') {
          this.ledger.acked(clientId);
          break;
        }
        // After the senders stop, 30 s of retries at most for the message in hand.
        if (!this.sending && this.ledger.now() - begun > 30_000) break;
        await sleep(retryDelay(attempt, retryAfter));
      }
      await sleep(this.intervalMs * (0.5 + Math.random()));
    }
  }
}
