/**
 * Strophe.js 5 under Node for the XEP suites (xeps.test.ts): browser shims, a load balancer that
 * is not sticky, connecting, and an inbox of arriving stanzas; every Strophe suite here uses it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DOMImplementation, DOMParser, XMLSerializer } from '@xmldom/xmldom';
// @ts-expect-error xhr2 ships no types; only its constructor is used.
import XHR2 from 'xhr2';
import { PASSWORD, type TestUser } from '../../support/client.js';
import { within } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
export type Strophe = any;

/** xmldom and xhr2 as the browser globals Strophe's browser build uses (responseXML parsed from the text). */
export function installBrowserShims(): void {
  const g = globalThis as Record<string, unknown>;
  g.DOMParser = DOMParser;
  g.XMLSerializer = XMLSerializer;
  g.document = new DOMImplementation().createDocument(null, null as unknown as string, null);
  const proto = Object.getPrototypeOf(new DOMImplementation().createDocument(null, 'x', null).documentElement);
  if (!('firstElementChild' in proto)) {
    Object.defineProperty(proto, 'firstElementChild', {
      get(this: { firstChild: { nodeType: number; nextSibling: unknown } | null }) {
        let n = this.firstChild;
        while (n && n.nodeType !== 1) n = n.nextSibling as typeof n;
        return n;
      },
    });
  }
  class XMLHttpRequestWithXML extends (XHR2 as unknown as { new (): { responseText: string } }) {
    get responseXML() {
      return this.responseText ? new DOMParser().parseFromString(this.responseText, 'text/xml') : null;
    }
  }
  g.XMLHttpRequest = XMLHttpRequestWithXML;
}

/** Strophe's module, loaded once with the shims in place. */
export async function loadStrophe(): Promise<Strophe> {
  installBrowserShims();
  const S = await import(pathToFileURL(path.resolve('node_modules/strophe.js/dist/strophe.esm.js')).href);
  S.Strophe.setLogLevel?.(S.Strophe.LogLevel.FATAL);
  return S;
}

/** A load balancer that is not sticky: each request goes to the next node in turn. */
export async function roundRobin(targets: string[]): Promise<{ url: string; close(): Promise<void>; counts: number[] }> {
  let i = 0;
  const counts = targets.map(() => 0);
  const server = http.createServer((req, res) => {
    const n = i++ % targets.length;
    counts[n]!++;
    const t = new URL(targets[n]!);
    const up = http.request({ host: t.hostname, port: t.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    close: () => new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/**
 * Connect a Strophe client as a user and wait until it is bound; `track` (the suite's list of
 * connections to close) gets it before it connects, so a failed connect is closed too.
 */
export async function connect(S: Strophe, url: string, user: TestUser, domain: string, resource?: string, track?: any[]): Promise<any> {
  const conn = new S.Strophe.Connection(`${url}/http-bind`);
  track?.push(conn);
  const statuses: number[] = [];
  await within(
    new Promise<void>((resolve, reject) => {
      conn.connect(`${user.name}@${domain}${resource ? `/${resource}` : ''}`, PASSWORD, (status: number, condition?: string) => {
        statuses.push(status);
        if (status === S.Strophe.Status.CONNECTED) resolve();
        if (status === S.Strophe.Status.AUTHFAIL || status === S.Strophe.Status.CONNFAIL) reject(new Error(`status ${status} ${condition ?? ''}`));
      });
    }),
    10_000,
    'Strophe connect',
  ).catch((err: Error) => {
    throw new Error(`${err.message} (statuses ${statuses.join(',')})`);
  });
  return conn;
}

/** Disconnect clients and wait until each says so (or 5 s). */
export async function disconnectAll(S: Strophe, conns: any[]): Promise<void> {
  await new Promise<void>((resolve) => {
    let n = 0;
    const live = conns.filter((c) => c.connected);
    if (live.length === 0) return resolve();
    const t = setTimeout(resolve, 5000);
    for (const c of live) {
      const orig = c.connect_callback;
      c.connect_callback = (st: number) => {
        orig?.(st);
        if (st === S.Strophe.Status.DISCONNECTED && ++n === live.length) {
          clearTimeout(t);
          resolve();
        }
      };
      c.disconnect('done');
    }
  });
  for (const c of conns) {
    try {
      c.reset?.();
    } catch {
      /* already gone */
    }
  }
}

/**
 * Stanzas of some kinds arriving at a connection: `next` waits for one that matches and takes it;
 * `got` holds what is not taken yet, `all` everything in arrival order.
 */
export function inbox(S: Strophe, conn: any, names: string | readonly string[]) {
  const got: any[] = [];
  const all: any[] = [];
  const waiters: Array<() => void> = [];
  for (const name of typeof names === 'string' ? [names] : names) {
    conn.addHandler((st: any) => {
      got.push(st);
      all.push(st);
      for (const w of waiters.splice(0)) w();
      return true;
    }, null, name);
  }
  return {
    got,
    all,
    async next(match: (st: any) => boolean, what: string, ms = 10_000): Promise<any> {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = got.find(match);
        if (hit) {
          got.splice(got.indexOf(hit), 1);
          return hit;
        }
        if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms; got ${got.map((x) => S.Strophe.serialize(x)).join('\n')}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, 100);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
    },
  };
}

/** Send an IQ; resolves with the result stanza or the error stanza (never rejects on a stanza error). */
export function iq(conn: any, stanza: any, ms = 10_000): Promise<any> {
  return within(new Promise((res) => conn.sendIQ(stanza, res, res, ms)), ms + 1000, 'iq');
}

/** The first descendant element with this local name (xmldom). */
export function first(st: any, local: string): any {
  return st?.getElementsByTagName(local)[0];
}

/** The error condition of an error stanza ('' when it is no error). */
export function conditionOf(st: any): string {
  if (st.getAttribute('type') !== 'error') return '';
  const e = first(st, 'error');
  for (let n = e?.firstChild; n; n = n.nextSibling) if (n.nodeType === 1 && n.namespaceURI === 'urn:ietf:params:xml:ns:xmpp-stanzas') return n.localName;
  return '?';
}
