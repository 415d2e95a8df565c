import http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { User } from './workload.js';

/**
 * bench/bosh.ts's users: each an XMPP client over BOSH (SASL PLAIN, bind, initial presence,
 * hold=1) whose requests alternate between the two nodes, and the run's bookkeeping of the
 * messages they sent and received.
 */

const BOSH = 'http://jabber.org/protocol/httpbind';
/** The XMPP domain the nodes serve (PARLEY_DOMAIN). */
export const DOMAIN = 'localhost';

/** A sent message and what became of it. */
export type Rec = { t0: number; recipient: number; measured: boolean; processedAt?: number; receivedAt?: number };

/** One user's BOSH session: at most two requests out (hold=1), alternating nodes request by request. */
export class Session {
  rid = 1 + Math.floor(Math.random() * 1e9);
  sid = '';
  outstanding = 0;
  turn: number;
  lost = false;
  stopped = false;
  requests = 0;
  /** Resolves the senders waiting for the previous held request to come back (= the server processed their message). */
  private onAnswer: Array<() => void> = [];

  constructor(readonly u: User, private readonly agents: http.Agent[], private readonly ports: number[], private readonly bench: Bench) {
    this.turn = u.i % 2;
  }

  post(inner: string, attrs = ''): Promise<string> {
    const node = this.turn++ % 2;
    const body = inner ? `<body xmlns='${BOSH}' rid='${this.rid++}' sid='${this.sid}'${attrs}>${inner}</body>` : `<body xmlns='${BOSH}' rid='${this.rid++}' sid='${this.sid}'${attrs}/>`;
    this.requests++;
    return rawPost(this.agents[node]!, this.ports[node]!, body);
  }

  async open(password: string): Promise<void> {
    const node = this.turn++ % 2;
    const created = await rawPost(this.agents[node]!, this.ports[node]!, `<body xmlns='${BOSH}' xmlns:xmpp='urn:xmpp:xbosh' rid='${this.rid++}' to='${DOMAIN}' wait='60' hold='1' ver='1.6' xmpp:version='1.0'/>`);
    this.sid = /sid='([^']+)'/.exec(created)?.[1] ?? '';
    if (!this.sid) throw new Error(`no sid: ${created}`);
    const auth = await this.post(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${this.u.name}\0${password}`).toString('base64')}</auth>`);
    if (!auth.includes('<success')) throw new Error(`auth ${this.u.name}: ${auth}`);
    await this.post('', ` xmlns:xmpp='urn:xmpp:xbosh' xmpp:restart='true'`);
    const bind = await this.post(`<iq xmlns='jabber:client' type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>bench</resource></bind></iq>`);
    if (!bind.includes('<jid>')) throw new Error(`bind ${this.u.name}: ${bind}`);
    const pres = await this.post(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);
    this.handle(pres);
  }

  /** Keep one request held, like Strophe: a new empty one whenever none is out. */
  poll(): void {
    if (this.stopped || this.lost || this.outstanding > 0) return;
    this.launch('');
  }

  /** Send a message in a new request; resolves once the server has processed it (the older held request comes back). */
  async send(stanza: string): Promise<boolean> {
    if (this.outstanding !== 1 || this.lost) return false;
    const processed = new Promise<void>((r) => this.onAnswer.push(r));
    this.launch(stanza);
    await processed;
    return true;
  }

  private launch(inner: string): void {
    this.outstanding++;
    this.post(inner).then(
      (text) => {
        this.outstanding--;
        for (const w of this.onAnswer.splice(0)) w();
        this.handle(text);
        this.poll();
      },
      (err: Error) => {
        this.outstanding--;
        for (const w of this.onAnswer.splice(0)) w();
        if (!this.stopped) this.bench.problem(`request ${(err as { code?: string }).code ?? err.message}`);
        this.lost = true;
      },
    );
  }

  handle(text: string): void {
    if (text.includes("type='terminate'")) {
      if (!this.stopped) {
        this.lost = true;
        this.bench.problem(`terminated ${/condition='([^']+)'/.exec(text)?.[1] ?? ''}`);
      }
      return;
    }
    const now = performance.now();
    for (const m of text.matchAll(/<body>([^ <]+) /g)) this.bench.received(this.u.i, m[1]!, now);
  }
}

/** POST one BOSH body to a node and read the whole answer. */
function rawPost(agent: http.Agent, port: number, body: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(body);
    const req = http.request(
      { host: '127.0.0.1', port, path: '/http-bind', method: 'POST', agent, headers: { 'content-type': 'text/xml; charset=utf-8', 'content-length': payload.length } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      },
    );
    req.setTimeout(40_000, () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(payload);
  });
}

/** The bookkeeping of a run. */
export class Bench {
  readonly sent = new Map<string, Rec>();
  readonly problems: Record<string, number> = {};
  duplicates = 0;
  unknown = 0;
  problem(what: string): void {
    this.problems[what] = (this.problems[what] ?? 0) + 1;
  }
  received(recipient: number, id: string, now: number): void {
    const r = this.sent.get(id);
    if (!r) return void this.unknown++;
    if (r.receivedAt !== undefined) return void this.duplicates++;
    if (r.recipient !== recipient) this.problem('misdelivered');
    r.receivedAt = now;
  }
}
