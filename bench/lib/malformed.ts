import { randomBytes } from 'node:crypto';
import net from 'node:net';

/**
 * Junk traffic for the chaos run: bad JSON, bad cursors, wrong content types, random bytes to
 * /http-bind, truncated multipart uploads, oversized headers, wrong methods, text PostgreSQL
 * cannot store. Written as raw bytes on a socket, so nothing on the way tidies a request up.
 */

/** What a malformed request needs to look like a real user's (a token, a conversation of theirs). */
export type Victim = { token: string; conversation: string };

/** One kind of junk: its name and a maker of the raw request bytes. */
type Kind = { name: string; make: (v: Victim, host: string) => Buffer; /** the client cuts the body short and closes: no answer expected */ cut?: boolean };

const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

function raw(method: string, path: string, host: string, headers: Record<string, string>, body: Buffer | string = ''): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`, 'Connection: close', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  if (b.length || method === 'POST' || method === 'PUT') lines.push(`Content-Length: ${b.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), b]);
}

const json = (v: Victim) => ({ Authorization: `Bearer ${v.token}`, 'Content-Type': 'application/json' });
const auth = (v: Victim) => ({ Authorization: `Bearer ${v.token}` });

const BAD_JSON = ['{"text": "x",', '{text: 1}', '[', '"just a string', '{"text": "\\ud800"}', '\u0000', '{"a":' + '['.repeat(5000), 'null', '{"text": {"nested": true}}', '{"text": "ok", "client_id": 12}'];
const BAD_CURSORS = ['garbage', '1-', '1-zzzzzzzzzzzzzzzzzzzz', '2-10', '-1', '1-%00', '%ff%fe', '1-10%00', 'x'.repeat(3000), '1-1e99', '%E2%80%AE', '1-NaN', '0x10', '1-10&since=1-11'];
const TYPES = ['text/plain', 'application/xml', 'multipart/form-data', 'application/x-www-form-urlencoded; charset=koi8-r', 'application/json; charset=utf-16', 'image/png', 'application/octet-stream'];

const KINDS: Kind[] = [
  { name: 'bad JSON to send', make: (v, h) => raw('POST', `/api/conversations/${v.conversation}/messages`, h, json(v), pick(BAD_JSON)) },
  { name: 'bad JSON to login', make: (_v, h) => raw('POST', '/api/login', h, { 'Content-Type': 'application/json' }, pick(BAD_JSON)) },
  { name: 'bad cursor', make: (v, h) => raw('GET', `/api/events?since=${pick(BAD_CURSORS)}&wait=0`, h, auth(v)) },
  { name: 'bad wait/limit/before', make: (v, h) => raw('GET', pick([`/api/events?wait=${pick(['-1', 'x', '1e309', '%00'])}`, `/api/conversations/${v.conversation}/messages?limit=${pick(['abc', '-5', '1e9', '%00'])}`, `/api/conversations/${v.conversation}/messages?before=${pick(['m%00', 'x'.repeat(500), '%ff'])}`]), h, auth(v)) },
  { name: 'wrong content type', make: (v, h) => raw('POST', pick([`/api/conversations/${v.conversation}/messages`, '/api/register', '/api/login', `/api/conversations/${v.conversation}/files`]), h, { ...auth(v), 'Content-Type': pick(TYPES) }, randomBytes(64)) },
  { name: 'random bytes to /http-bind', make: (_v, h) => raw('POST', '/http-bind', h, { 'Content-Type': 'text/xml' }, randomBytes(1 + Math.floor(Math.random() * 2000))) },
  {
    name: 'bad BOSH body',
    make: (_v, h) =>
      raw('POST', pick(['/http-bind', '/bosh']), h, { 'Content-Type': 'text/xml; charset=utf-8' }, pick([
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='x' to='localhost'/>",
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='nosuchsid'/>",
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' sid='a b'/>",
        '<body>',
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><body>&a;</body>',
        "<body xmlns='http://jabber.org/protocol/httpbind' rid='1'>&#0;</body>",
        `<body xmlns='http://jabber.org/protocol/httpbind' rid='1' wait='60' hold='1' ver='1.6' to='localhost'>${'<a>'.repeat(100)}</body>`,
        'x'.repeat(70_000),
      ])),
  },
  {
    name: 'truncated multipart',
    make: (v, h) => {
      const boundary = `----chaos${randomBytes(6).toString('hex')}`;
      const full = `--${boundary}\r\nContent-Disposition: form-data; name="client_id"\r\n\r\nup1\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\nContent-Type: text/plain\r\n\r\n${'y'.repeat(400)}\r\n--${boundary}--\r\n`;
      const body = full.slice(0, 20 + Math.floor(Math.random() * (full.length - 40)));
      return raw('POST', `/api/conversations/${v.conversation}/files`, h, { ...auth(v), 'Content-Type': `multipart/form-data; boundary=${boundary}` }, body);
    },
  },
  {
    name: 'upload cut mid-body',
    cut: true,
    make: (v, h) => {
      const boundary = 'chaoscut';
      const head = `POST /api/conversations/${v.conversation}/files HTTP/1.1\r\nHost: ${h}\r\nAuthorization: Bearer ${v.token}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 100000\r\n\r\n`;
      return Buffer.from(`${head}--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="b.bin"\r\n\r\n${'z'.repeat(500)}`);
    },
  },
  { name: 'oversized header', make: (v, h) => raw('GET', '/api/me', h, { ...auth(v), 'X-Filler': 'f'.repeat(9000 + Math.floor(Math.random() * 20000)) }) },
  { name: 'oversized token', make: (_v, h) => raw('GET', '/api/me', h, { Authorization: `Bearer ${'t'.repeat(6000)}` }) },
  { name: 'bad token', make: (_v, h) => raw('GET', '/api/conversations', h, { Authorization: pick(['Bearer ', 'Bearer \u00ff\u00fe', 'Basic Zm9vOmJhcg==', `Bearer ${randomBytes(30).toString('base64')}`, 'Bearer a\tb']) }) },
  { name: 'wrong method', make: (v, h) => raw(pick(['PUT', 'PATCH', 'DELETE', 'TRACE']), pick(['/api/register', '/api/events', `/api/conversations/${v.conversation}/messages`, '/http-bind', '/api/login']), h, auth(v), pick(['', '{}'])) },
  { name: 'bad path encoding', make: (v, h) => raw('GET', pick(['/api/conversations/%ff%fe/messages', '/api/conversations/%/messages', '/api/%00', `/api/conversations/${v.conversation}%00/messages`, '/api/files/%c0%af', '/api/conversations/%ED%A0%80/messages']), h, auth(v)) },
  { name: 'NUL in a field', make: (v, h) => pick([raw('POST', `/api/conversations/${v.conversation}/messages`, h, json(v), JSON.stringify({ text: 'hi', client_id: `c\u0000${Math.random()}` })), raw('POST', '/api/login', h, { 'Content-Type': 'application/json' }, JSON.stringify({ name: 'ab\u0000c', password: 'whatever-password' })), raw('POST', '/api/conversations', h, json(v), JSON.stringify({ with: 'x\u0000' }))]) },
  { name: 'wrong field types', make: (v, h) => raw('POST', pick(['/api/conversations', `/api/conversations/${v.conversation}/read`, `/api/conversations/${v.conversation}/members`, '/api/register']), h, json(v), JSON.stringify(pick([{ members: Array(300).fill('x') }, { title: ['a'] }, { up_to: 'soon' }, { name: 42 }, { with: { a: 1 } }, { up_to: 1e300 }, { name: 'x', password: 'y'.repeat(10_000) }]))) },
  { name: 'bad form body', make: (v, h) => raw('POST', `/api/conversations/${v.conversation}/messages`, h, { ...auth(v), 'Content-Type': 'application/x-www-form-urlencoded' }, pick(['text=%zz', 'text=%00&client_id=%00', '&&&=', `a=${'b&a='.repeat(300)}`])) },
];

/** Status classes of the answers: `2xx` … `5xx`, `none` (closed or timed out without an answer). */
export type StatusCounts = Record<string, number>;

/** Send one raw request and read its status line; `none` when the connection ends without one. */
function sendRaw(port: number, bytes: Buffer, cut: boolean, timeoutMs: number): Promise<number | null> {
  return new Promise((resolve) => {
    let head = '';
    let done = false;
    const finish = (status: number | null) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(status);
    };
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(bytes);
      if (cut) setTimeout(() => finish(null), 20); // the client goes away mid-upload
    });
    s.setTimeout(timeoutMs, () => finish(null));
    s.on('data', (d: Buffer) => {
      head += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (m) finish(Number(m[1]));
      else if (head.length > 64) finish(null);
    });
    s.on('error', () => finish(null));
    s.on('close', () => finish(null));
  });
}

/** One answered malformed request: what kind, when it was sent, its status (null: no answer). */
export type Junk = { kind: string; at: number; status: number | null; cut: boolean; /** the request's start, when it got no answer */ sample?: string };

/** Send `count` malformed requests to a proxy on loopback, `concurrency` at a time. */
export async function flood(port: number, victim: Victim, count: number, concurrency: number, now: () => number): Promise<Junk[]> {
  const out: Junk[] = [];
  let next = 0;
  const host = `127.0.0.1:${port}`;
  const worker = async () => {
    while (next < count) {
      const k = KINDS[next++ % KINDS.length]!;
      const at = now();
      const bytes = k.make(victim, host);
      const status = await sendRaw(port, bytes, k.cut === true, 10_000);
      const j: Junk = { kind: k.name, at, status, cut: k.cut === true };
      if (status === null && !j.cut) j.sample = bytes.subarray(0, 400).toString('latin1');
      out.push(j);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return out;
}
