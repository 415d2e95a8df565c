/**
 * Converse.js (the npm package `converse.js`, unmodified) in Chromium against Parley: a page on
 * another origin that loads the package's build and logs in over BOSH, and a recorder of what
 * Parley answered with an error (read off the BOSH traffic, not from Converse's internals).
 */
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { childElements, parseXml, type XmlElement } from '../../server/transports/bosh/xml.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DIST = path.join(ROOT, 'node_modules', 'converse.js', 'dist');

const TYPES: Record<string, string> = {
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
};

/**
 * The page: Converse's build and styles from the package, and a one-line plugin that lets the test
 * read Converse's state (`window.__converse`) as a person reads the screen. Login settings come
 * from the query string.
 */
function pageHtml(): string {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Converse on another origin</title>
<link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script>
</head><body class="converse-fullscreen">
<script type="module">
  var q = new URLSearchParams(location.search);
  converse.plugins.add('parley-test', { initialize: function () { window.__converse = this._converse; } });
  converse.initialize({
    assets_path: '/dist/',
    bosh_service_url: q.get('bosh'),
    discover_connection_methods: false,
    jid: q.get('jid'),
    password: q.get('password'),
    auto_login: true,
    view_mode: 'fullscreen',
    whitelisted_plugins: ['parley-test'],
    loglevel: 'warn',
    play_sounds: false,
    show_desktop_notifications: false
  });
</script>
</body></html>`;
}

/** A static server for the page and the package's dist/ (its own port: another origin than Parley's). */
export async function startConverseSite(): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(async (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      return res.end(pageHtml());
    }
    if (u.pathname.startsWith('/dist/')) {
      const file = path.resolve(DIST, `.${decodeURIComponent(u.pathname.slice('/dist'.length))}`);
      if (file.startsWith(DIST + path.sep)) {
        try {
          const bytes = await readFile(file);
          res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
          return res.end(bytes);
        } catch {
          /* not found below */
        }
      }
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A request of Converse's that Parley answered with a stanza error. */
export interface Refused {
  /** What was asked: `iq get to=… query#ns node=…`, `presence to=…`, `message to=…`. */
  request: string;
  condition: string;
}

function describe(st: XmlElement): string {
  const payload = childElements(st)[0];
  const what = payload ? `${payload.local}${payload.ns ? `#${payload.ns}` : ''}` : '';
  const node = payload ? (payload.attrs.node ?? childElements(payload)[0]?.attrs.node) : undefined;
  return [st.local, st.attrs.type, st.attrs.to ? `to=${st.attrs.to}` : '', what, node ? `node=${node}` : ''].filter(Boolean).join(' ');
}

/** One Converse user in their own browser context, with the BOSH traffic watched. */
export class ConversePage {
  readonly errors: string[] = [];
  /** Converse's own warnings and errors, printed when a test fails. */
  readonly console: string[] = [];
  readonly refused: Refused[] = [];
  /** Hosts other than loopback the page tried to reach (refused). */
  readonly offsite: string[] = [];
  private readonly asked = new Map<string, string>();

  private constructor(readonly page: Page) {
    page.on('pageerror', (e) => this.errors.push(`pageerror: ${e.message} ${(e.stack ?? '').split('\n').slice(0, 4).join(' | ')}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') this.console.push(`${new Date().toISOString().slice(11, 23)} ${m.type()}: ${m.text().slice(0, 400)}`);
    });
    page.on('request', (r) => {
      if (!r.url().includes('/http-bind')) return;
      for (const st of this.stanzas(r.postData())) if (st.attrs.id) this.asked.set(st.attrs.id, describe(st));
    });
    page.on('response', async (r) => {
      if (!r.url().includes('/http-bind') || r.request().method() !== 'POST') return;
      let text: string;
      try {
        text = await r.text();
      } catch {
        return; // the page went away
      }
      for (const st of this.stanzas(text)) {
        if (st.attrs.type !== 'error') continue;
        const err = childElements(st).find((c) => c.local === 'error');
        const condition = err ? (childElements(err)[0]?.local ?? '?') : '?';
        this.refused.push({ request: this.asked.get(st.attrs.id ?? '') ?? `${st.local} from=${st.attrs.from ?? ''}`, condition });
      }
    });
  }

  private stanzas(raw: string | null): XmlElement[] {
    if (!raw) return [];
    try {
      return childElements(parseXml(raw));
    } catch {
      return [];
    }
  }

  /** A fresh context (a fresh profile: no storage), logged in as `name`. */
  static async login(browser: Browser, site: string, bosh: string, jid: string, password: string): Promise<ConversePage> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const c = new ConversePage(page);
    // Tests talk to loopback only: what Converse would fetch from elsewhere (avatars, emoji
    // sprites) is refused in the browser, before any name is looked up.
    await context.route(/^https?:\/\/(?!127\.0\.0\.1[:/]|localhost[:/])/, (route) => {
      c.offsite.push(new URL(route.request().url()).host);
      return route.abort('blockedbyclient');
    });
    const q = new URLSearchParams({ bosh, jid, password });
    await page.goto(`${site}/?${q}`);
    await page.waitForFunction(() => {
      const c = (window as unknown as { __converse?: { api: { connection: { connected(): boolean } } } }).__converse;
      return !!c && c.api.connection.connected();
    }, undefined, { timeout: 20_000 });
    return c;
  }

  /** Evaluate in the page with Converse's state as `c` (a string: tsx's helpers do not exist in the page). */
  eval<T>(body: string): Promise<T> {
    return this.page.evaluate(`(async function (c) { ${body} })(window.__converse)`) as Promise<T>;
  }

  /** Wait until `text` shows anywhere on the page. */
  async waitForText(text: string, timeout = 10_000): Promise<number> {
    const t0 = Date.now();
    await this.page.waitForFunction((t) => document.body.innerText.includes(t), text, { polling: 20, timeout });
    return Date.now() - t0;
  }

  async close(): Promise<void> {
    await this.page.context().close();
  }
}
