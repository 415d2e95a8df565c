/** Strophe.js under Node (its browser build with xmldom and xhr2) and a round-robin balancer, for the Strophe suites. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DOMImplementation, DOMParser, XMLSerializer } from '@xmldom/xmldom';
// @ts-expect-error xhr2 ships no types; only its constructor is used.
import XHR2 from 'xhr2';

/**
 * Node lacks the browser globals Strophe's browser build uses: give it xmldom and xhr2. Strophe
 * 5's Request.getResponse() reads `responseXML`, which xhr2 does not provide: parse responseText.
 * (The package's Node entry imports `ws`, which Parley does not need, so the browser build is loaded.)
 */
export function installBrowserShims(): void {
  const g = globalThis as Record<string, unknown>;
  g.DOMParser = DOMParser;
  g.XMLSerializer = XMLSerializer;
  const doc = new DOMImplementation().createDocument(null, null as unknown as string, null);
  g.document = doc;
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
    up.on('error', () => {
      res.destroy(); // as a dead upstream looks to a browser: the connection drops
    });
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

