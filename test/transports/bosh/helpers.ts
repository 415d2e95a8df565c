import { expect } from 'chai';
import { childElements, parseXml, type XmlElement } from '../../../server/transports/bosh/xml.js';

export const BOSH_NS = 'http://jabber.org/protocol/httpbind';
export const b64 = (s: string) => Buffer.from(s).toString('base64');

/** One answer of the connection manager. */
export interface Answer {
  status: number;
  text: string;
  headers: Headers;
  /** The parsed <body/> (undefined when the answer is empty, legacy errors). */
  body: XmlElement | undefined;
  /** Serialized-ish view of the payload children for quick assertions. */
  stanzas: XmlElement[];
  ms: number;
}

/** POST raw bytes to a BOSH endpoint. */
export async function post(url: string, raw: string | Buffer, contentType = 'text/xml; charset=utf-8'): Promise<Answer> {
  const t0 = Date.now();
  const res = await fetch(`${url}/http-bind`, { method: 'POST', body: typeof raw === 'string' ? raw : new Uint8Array(raw), headers: { 'Content-Type': contentType } });
  const text = await res.text();
  let body: XmlElement | undefined;
  if (text) body = parseXml(text);
  return { status: res.status, text, headers: res.headers, body, stanzas: body ? childElements(body) : [], ms: Date.now() - t0 };
}

/**
 * A scripted BOSH client whose requests go round-robin over the nodes, as a non-sticky load
 * balancer would send them.
 */
export class BoshClient {
  rid: number;
  sid = '';
  private turn = 0;
  jid = '';
  constructor(readonly nodes: string[], readonly domain: string, rid = 1_000_000 + Math.floor(Math.random() * 1e9)) {
    this.rid = rid;
  }
  url(): string {
    return this.nodes[this.turn++ % this.nodes.length]!;
  }
  /** Build a body for the next rid (or a given one) without sending it. */
  build(inner = '', attrs: Record<string, string | number> = {}, rid = this.rid++): { rid: number; xml: string } {
    const a = Object.entries({ rid, sid: this.sid, ...attrs }).map(([k, v]) => ` ${k}='${v}'`).join('');
    const xml = inner ? `<body xmlns='${BOSH_NS}'${a}>${inner}</body>` : `<body xmlns='${BOSH_NS}'${a}/>`;
    return { rid, xml };
  }
  send(inner = '', attrs: Record<string, string | number> = {}, url = this.url()): Promise<Answer> {
    return post(url, this.build(inner, attrs).xml);
  }
  async create(attrs: Record<string, string | number> = {}): Promise<Answer> {
    const rid = this.rid++;
    const a = Object.entries({ rid, to: this.domain, wait: 60, hold: 1, ver: '1.6', 'xml:lang': 'en', 'xmpp:version': '1.0', content: 'text/xml; charset=utf-8', ...attrs })
      .map(([k, v]) => ` ${k}='${v}'`).join('');
    const ans = await post(this.url(), `<body xmlns='${BOSH_NS}' xmlns:xmpp='urn:xmpp:xbosh'${a}/>`);
    expect(ans.status).to.equal(200);
    this.sid = ans.body!.attrs.sid!;
    return ans;
  }
  /** SASL PLAIN, restart, bind; returns the stanzas seen on the way. */
  async login(name: string, password: string, resource = 'test'): Promise<void> {
    const auth = await this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64(`\0${name}\0${password}`)}</auth>`);
    expect(auth.text).to.contain('<success');
    const restart = await this.send('', { 'xmpp:restart': 'true', 'xmlns:xmpp': 'urn:xmpp:xbosh', to: this.domain });
    expect(restart.text).to.contain("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>");
    const bind = await this.send(`<iq xmlns='jabber:client' type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    const m = /<jid>([^<]+)<\/jid>/.exec(bind.text);
    expect(m, bind.text).to.not.equal(null);
    this.jid = m![1]!;
  }
}

/** Wait until a promise settles or fail after ms. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

export { sleep } from '../../support/sleep.js';

/**
 * Issue 11's crafted 64 KB body: 30 nested elements declaring 63 prefixes each, then leaves that
 * each declare one more. A parser that copies the parent's prefix map per declaring element does
 * ~2,700 copies of ~1,900 entries.
 */
export function craftedNamespaceBody(sid = 'no-such-session'): string {
  let open = '';
  let close = '';
  for (let d = 0; d < 30; d++) {
    open += `<e${d}${Array.from({ length: 63 }, (_, i) => ` xmlns:p${d}x${i}='u'`).join('')}>`;
    close = `</e${d}>${close}`;
  }
  let leaves = '';
  for (let i = 0; open.length + leaves.length + close.length < 63_500; i++) leaves += `<l xmlns:q${i.toString(36)}='u'/>`;
  return `<body xmlns='${BOSH_NS}' rid='1' sid='${sid}'>${open}${leaves}${close}</body>`;
}
