import http from 'node:http';
import { backoff, PASSWORD, type Ledger, type Peer } from './chaos-users.js';
import { sleep } from './sleep.js';

/**
 * A BOSH client of the chaos run, as XEP-0124/0206 asks of one: hold=1 (one request parked, a
 * second one to send), `ack` on every request, and a request that failed (no answer, an HTTP
 * error from the proxy, a recoverable `type='error'` body) resent with the SAME rid, which the
 * server answers from its buffer if it had processed it. A terminal `item-not-found` means the
 * session is gone: the client logs in again with a new session, and initial presence replays
 * what no device confirmed. A message's stanza id is its client_id; a stanza error for it means
 * "not stored": it is sent again with the same id.
 */

const BOSH_NS = 'http://jabber.org/protocol/httpbind';
const DOMAIN = 'localhost';

class SessionLost extends Error {}

type Outgoing = { clientId: string; stanza: string };

export class BoshUser implements Peer {
  conversation?: string;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  private sid = '';
  private rid = 0;
  /** Rids answered, for the `ack` attribute (the highest rid below which every answer arrived). */
  private answered = new Set<number>();
  private ackRid = 0;
  private outstanding = 0;
  /** Which session the requests belong to: answers of a dead session's requests change no counter. */
  private session = 0;
  private readonly queue: Outgoing[] = [];
  /** What the requests out now carry (a new session sends it again). */
  private readonly inflight = new Set<Outgoing[]>();
  private running = false;
  private sending = false;
  private partner = '';
  private n = 0;
  /** Every exchange, for --keep: what was sent and answered, to explain a loss. */
  readonly trace: string[] = [];
  /** Stanzas refused by the server, waiting to be sent again. */
  private retrying = 0;
  private reconnecting: Promise<void> | null = null;
  private sendTimer: NodeJS.Timeout | null = null;
  private settle: Promise<void> = Promise.resolve();

  constructor(
    private readonly port: number,
    private readonly ledger: Ledger,
    readonly name: string,
    private readonly intervalMs: number,
  ) {}

  /** Register through the JSON API (BOSH has no in-band registration here). */
  async register(): Promise<void> {
    const body = JSON.stringify({ name: this.name, password: PASSWORD });
    for (let attempt = 0; attempt < 6; attempt++) {
      const r = await this.raw('/api/register', body, 'application/json').catch(() => null);
      if (r && (r.status === 201 || r.status === 409)) {
        this.ledger.receiver(this.name, true);
        return;
      }
      await sleep(backoff(attempt));
    }
    throw new Error(`could not register ${this.name}`);
  }

  /** Open a session: create, SASL PLAIN, restart, bind, initial presence; then keep a request parked. */
  async connect(): Promise<void> {
    this.running = true;
    await this.open();
    this.pump();
  }

  private async open(): Promise<void> {
    this.rid = 1 + Math.floor(Math.random() * 1e9);
    this.answered = new Set();
    this.ackRid = this.rid - 1;
    const created = await this.exchange(`<body xmlns='${BOSH_NS}' xmlns:xmpp='urn:xmpp:xbosh' rid='${this.rid++}' to='${DOMAIN}' wait='20' hold='1' ack='1' ver='1.6' xmpp:version='1.0'/>`, this.rid - 1);
    this.sid = /sid='([^']+)'/.exec(created)?.[1] ?? '';
    if (!this.sid) throw new Error(`no sid: ${created}`);
    const auth = await this.post(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${this.name}\0${PASSWORD}`).toString('base64')}</auth>`);
    if (!auth.includes('<success')) throw new Error(`auth ${this.name}: ${auth}`);
    await this.post('', ` xmlns:xmpp='urn:xmpp:xbosh' xmpp:restart='true'`);
    const bind = await this.post(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>chaos</resource></bind></iq>`);
    if (!bind.includes('<jid>')) throw new Error(`bind ${this.name}: ${bind}`);
    this.handle(await this.post(`<presence xmlns='jabber:client'/>`));
  }

  /** One request of this session with the next rid, resent with the same rid until answered. */
  private post(inner: string, attrs = ''): Promise<string> {
    const rid = this.rid++;
    const open = `<body xmlns='${BOSH_NS}' rid='${rid}' sid='${this.sid}' ack='${this.ackRid}'${attrs}`;
    return this.exchange(inner ? `${open}>${inner}</body>` : `${open}/>`, rid);
  }

  private async exchange(body: string, rid: number): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      let text: string | null = null;
      try {
        const sentAt = this.ledger.now();
        const r = await this.raw('/http-bind', body, 'text/xml; charset=utf-8');
        if (r.status === 200) text = r.body;
        this.trace.push(`${Math.round(sentAt)}-${Math.round(this.ledger.now())} rid ${rid} #${attempt} ${r.status} ${body.slice(0, 160)} => ${r.body.slice(0, 600)}`);
      } catch {
        // no answer: resend
      }
      // The wrapper's own type (a stanza inside may have type='error' too: that is not a binding error).
      const wrapper = text === null ? '' : (/^<body\b[^>]*>/.exec(text)?.[0] ?? '');
      if (wrapper.includes("type='terminate'")) {
        const condition = /condition='([^']+)'/.exec(wrapper)?.[1];
        if (condition) throw new SessionLost(condition);
        return text!;
      }
      if (text !== null && !wrapper.includes("type='error'")) {
        this.answered.add(rid);
        while (this.answered.has(this.ackRid + 1)) this.answered.delete(++this.ackRid);
        return text;
      }
      if (!this.running) throw new SessionLost('stopped');
      if (attempt > 40) throw new SessionLost('no answer after 40 resends');
      await sleep(backoff(Math.min(attempt, 3)));
    }
  }

  /** Keep one request out (empty, or carrying what is queued), and a second when there is something to send. */
  private pump(): void {
    if (!this.running || this.reconnecting) return;
    if (this.outstanding === 0 || (this.outstanding === 1 && this.queue.length > 0)) {
      const batch = this.queue.splice(0);
      const session = this.session;
      this.outstanding++;
      this.inflight.add(batch);
      this.post(batch.map((b) => b.stanza).join('')).then(
        (text) => {
          this.inflight.delete(batch);
          if (session === this.session) this.outstanding--;
          for (const b of batch) this.ledger.acked(b.clientId);
          this.handle(text);
          this.pump();
        },
        (err: unknown) => {
          const mine = this.inflight.delete(batch); // false: reopen() already sent it again
          if (session === this.session) this.outstanding--;
          if (mine) this.queue.unshift(...batch); // not known to be processed: send again, same ids
          if (err instanceof SessionLost && this.running && session === this.session) this.reopen();
          else this.pump();
        },
      );
      if (this.outstanding < 2 && this.queue.length > 0) this.pump();
    }
  }

  /**
   * The session is gone: a new one at once, as a client must (initial presence brings again what no
   * device confirmed). What the old session's requests carried goes again in the new one (same
   * ids: stored once); its request still held somewhere is left to end by itself.
   */
  private reopen(): void {
    if (this.reconnecting) return;
    this.ledger.boshLost.push(this.ledger.now());
    this.session++;
    this.outstanding = 0;
    for (const batch of this.inflight) this.queue.unshift(...batch);
    this.inflight.clear();
    this.reconnecting = (async () => {
      for (let attempt = 0; this.running; attempt++) {
        try {
          await this.open();
          this.ledger.boshReconnects++;
          break;
        } catch {
          await sleep(backoff(attempt));
        }
      }
      this.reconnecting = null;
      this.pump();
    })();
  }

  private handle(text: string): void {
    for (const m of text.matchAll(/<message\b([^>]*)>(.*?)<\/message>/gs)) {
      const attrs = m[1]!;
      const id = /\bid='([^']*)'/.exec(attrs)?.[1] ?? /\bid="([^"]*)"/.exec(attrs)?.[1];
      if (!id) continue;
      if (/type='error'/.test(attrs)) {
        // Not stored (the database was away, say): the same stanza again, same id.
        // type='wait' asks to retry later: 2 s, as the JSON API's Retry-After says.
        const rec = this.ledger.sends.get(id);
        if (rec) {
          this.ledger.unacked(id);
          this.retrying++;
          setTimeout(() => {
            this.retrying--;
            this.queue.push({ clientId: id, stanza: this.stanza(id) });
            this.pump();
          }, 2_000 * (1 + Math.random() * 0.2));
        }
        continue;
      }
      const body = /<body>([^<]*)<\/body>/.exec(m[2]!)?.[1];
      if (body !== undefined) this.ledger.shown(this.name, id, body);
    }
  }

  private stanza(clientId: string): string {
    return `<message xmlns='jabber:client' type='chat' to='${this.partner}@${DOMAIN}' id='${clientId}'><body>${clientId} from ${this.name}</body></message>`;
  }

  /** Send a message to `partner` every interval (with jitter) until stopped. */
  startSending(partner: string): void {
    this.partner = partner;
    this.sending = true;
    const tick = () => {
      if (!this.sending) return;
      const clientId = `ch-${this.name}-${++this.n}`;
      this.ledger.sendStarted(clientId, this.name, partner, true);
      this.queue.push({ clientId, stanza: this.stanza(clientId) });
      this.pump();
      this.sendTimer = setTimeout(tick, this.intervalMs * (0.5 + Math.random()));
    };
    tick();
  }

  stopSending(): void {
    this.sending = false;
    if (this.sendTimer) clearTimeout(this.sendTimer);
    // Settled when the queue is empty and nothing carrying a message is out (30 s at most).
    this.settle = (async () => {
      const until = Date.now() + 30_000;
      while (Date.now() < until && (this.queue.length > 0 || this.retrying > 0 || this.reconnecting)) await sleep(100);
      await sleep(3_000); // a stanza error for the last messages arrives in a later answer
      while (Date.now() < until && (this.queue.length > 0 || this.retrying > 0 || this.reconnecting)) await sleep(100);
    })();
  }

  sendsSettled(): Promise<void> {
    return this.settle;
  }

  stop(): void {
    this.running = false;
    this.agent.destroy();
  }

  private raw(pathName: string, body: string, type: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const payload = Buffer.from(body);
      const req = http.request(
        { host: '127.0.0.1', port: this.port, path: pathName, method: 'POST', agent: this.agent, headers: { 'content-type': type, 'content-length': payload.length } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.setTimeout(35_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      req.end(payload);
    });
  }
}
