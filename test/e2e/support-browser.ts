import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import sharp from 'sharp';
import { IN_CI } from '../support/services.js';

/** Debian's Chromium; CI installs it (.ci/run), a developer machine may not have it. */
export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const NGINX = process.env['NGINX_PATH'] ?? '/usr/sbin/nginx';

/** Headless, no sandbox (containers), nothing that phones home or slows a fresh profile. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Skip the suite loudly when a program is missing; in CI, fail instead. */
export function requireProgram(ctx: Mocha.Context, file: string, what: string): void {
  if (existsSync(file)) return;
  if (IN_CI) throw new Error(`${what} (${file}) is required in CI`);
  console.warn(`\n!!! SKIPPING browser tests: ${what} not found at ${file}\n`);
  ctx.skip();
}

/** Chromium, headless, with a fresh profile per context. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/** A PNG picture (a small landscape) to send: real bytes, so the server can make a thumbnail. */
export async function makePicture(): Promise<Buffer> {
  const w = 480;
  const h = 320;
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">` +
    '<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#ffb347"/>' +
    '<stop offset="1" stop-color="#ff5e62"/></linearGradient></defs>' +
    '<rect width="100%" height="100%" fill="url(#g)"/><circle cx="360" cy="90" r="40" fill="#fff6d5"/>' +
    '<path d="M0 320 L140 150 L240 260 L320 190 L480 320Z" fill="#5b3fd6" opacity=".85"/></svg>';
  return sharp(Buffer.from(svg)).png().toBuffer();
}

/** One person using the page in their own browser context (own storage, own cookies). */
export class ChatPage {
  readonly errors: string[] = [];

  constructor(
    readonly page: Page,
    readonly base: string,
  ) {
    // A script error or a CSP violation is a bug even when the flow still works.
    page.on('pageerror', (e) => this.errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) this.errors.push(`console: ${m.text()}`);
    });
  }

  /** A new context and page at `base`. */
  static async open(browser: Browser, base: string, viewport = { width: 1280, height: 800 }): Promise<ChatPage> {
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    const chat = new ChatPage(page, base);
    await page.goto(`${base}/`);
    return chat;
  }

  get context(): BrowserContext {
    return this.page.context();
  }

  async account(kind: 'Register' | 'Log in', name: string, password = 'correct horse'): Promise<void> {
    await this.page.getByLabel('Name', { exact: true }).fill(name);
    await this.page.getByLabel('Password', { exact: true }).fill(password);
    await this.page.getByRole('button', { name: kind, exact: true }).click();
    await this.page.getByRole('button', { name: 'Log out' }).waitFor();
  }

  /** The page's session token (to act for its user through the API, as a script would). */
  async token(): Promise<string> {
    return (await this.page.evaluate('window.parleyApp.client.token')) as string;
  }

  async startChat(name: string): Promise<void> {
    await this.page.getByLabel('Start chat with').fill(name);
    await this.page.getByRole('button', { name: 'Start', exact: true }).click();
    await this.page.getByRole('heading', { name, exact: true }).waitFor();
  }

  chatsList(): Locator {
    return this.page.getByRole('list', { name: 'Chats' });
  }

  contact(name: string): Locator {
    return this.page.getByRole('list', { name: 'Contacts' }).getByRole('listitem').filter({ hasText: name });
  }

  async openChat(title: string): Promise<void> {
    await this.chatsList().getByRole('button', { name: new RegExp(`^${title}\\b`) }).click();
    await this.page.getByRole('heading', { name: title, exact: true }).waitFor();
  }

  messages(): Locator {
    return this.page.getByRole('list', { name: 'Messages' }).getByRole('listitem');
  }

  message(text: string): Locator {
    return this.messages().filter({ hasText: text });
  }

  async type(text: string): Promise<void> {
    await this.page.getByLabel('Message', { exact: true }).fill(text);
  }

  async send(text: string): Promise<void> {
    await this.type(text);
    await this.page.getByRole('button', { name: 'Send', exact: true }).click();
  }

  async attach(name: string, mimeType: string, buffer: Buffer): Promise<void> {
    const [chooser] = await Promise.all([this.page.waitForEvent('filechooser'), this.page.getByRole('button', { name: 'Attach' }).click()]);
    await chooser.setFiles({ name, mimeType, buffer });
  }

  /** Resolves when `text` is on the page; polls every 10 ms so the time measured is the page's, not the poller's. */
  async waitForText(text: string, timeout: number): Promise<void> {
    await this.page.waitForFunction((t) => document.body.innerText.includes(t), text, { polling: 10, timeout });
  }

  /**
   * Record every status the tick of my message containing `text` shows, in order, from now on
   * (a MutationObserver in the page: transitions are too quick to sample from outside).
   */
  async recordTicks(text: string): Promise<void> {
    // A string, not a function: tsx would wrap named inner functions in a helper the page lacks.
    await this.page.evaluate(`(function (t) {
      window.__ticks = [];
      function look() {
        var items = document.querySelectorAll('.messages li');
        for (var i = 0; i < items.length; i++) {
          if ((items[i].textContent || '').indexOf(t) === -1) continue;
          var tick = items[i].querySelector('.tick');
          var label = tick && tick.getAttribute('aria-label');
          if (label && window.__ticks[window.__ticks.length - 1] !== label) window.__ticks.push(label);
        }
      }
      new MutationObserver(look).observe(document.body, { subtree: true, childList: true, attributes: true });
      look();
    })(${JSON.stringify(text)})`);
  }

  /** From now on, note (page clock) when text containing `text` first shows anywhere on the page. */
  async watchFor(text: string): Promise<void> {
    await this.page.evaluate(`(function (t) {
      window.__seen = window.__seen || {};
      function look() { if (!window.__seen[t] && document.body.textContent.indexOf(t) !== -1) window.__seen[t] = Date.now(); }
      new MutationObserver(look).observe(document.body, { subtree: true, childList: true, characterData: true });
      look();
    })(${JSON.stringify(text)})`);
  }

  /** The page-clock time `watchFor(text)` saw it, waiting up to `timeout`. */
  async seenAt(text: string, timeout: number): Promise<number> {
    // A function, not a string: the page's CSP forbids eval, which string predicates use.
    const handle = await this.page.waitForFunction((t) => (window as unknown as { __seen?: Record<string, number> }).__seen?.[t], text, { polling: 10, timeout });
    return (await handle.jsonValue()) as number;
  }

  /**
   * Send `text` and return the page-clock time the Send button was pressed (the moment the
   * person pressed it, not when the test driver started its click, which under load can be
   * hundreds of milliseconds earlier).
   */
  async sendTimed(text: string): Promise<number> {
    await this.type(text);
    await this.page.evaluate(`(function () {
      var b = document.getElementById('send-button');
      b.addEventListener('click', function once() { window.__pressedAt = Date.now(); b.removeEventListener('click', once, true); }, true);
    })()`);
    await this.page.getByRole('button', { name: 'Send', exact: true }).click();
    return (await this.page.evaluate('window.__pressedAt')) as number;
  }

  /** Milliseconds from pressing Send on this page to `text` showing on `other`'s. */
  async latencyTo(other: ChatPage, text: string, timeout = 5000): Promise<number> {
    await other.watchFor(text);
    const pressed = await this.sendTimed(text);
    return (await other.seenAt(text, timeout)) - pressed;
  }

  async ticks(): Promise<string[]> {
    return this.page.evaluate(() => (window as unknown as { __ticks: string[] }).__ticks);
  }

  async close(): Promise<void> {
    await this.context.close();
  }
}

/** A free loopback port (closed again at once; nginx binds it right after). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A running nginx in front of an upstream. */
export interface Proxy {
  url: string;
  close(): Promise<void>;
}

/**
 * nginx as the restrictive proxies Parley is for: it buffers whole responses (proxy_buffering)
 * and cuts any request the upstream holds past 30 s (proxy_read_timeout, or `readTimeoutSeconds`), speaking HTTP/1.0 to
 * the upstream as nginx does by default. Everything (pid, logs, temp files) lives in a temp dir.
 */
export async function startNginx(upstream: string, readTimeoutSeconds = 30): Promise<Proxy> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'parley-nginx-'));
  const port = await freePort();
  const u = new URL(upstream);
  const conf = `
worker_processes 1;
${process.getuid?.() === 0 ? 'user root root; # as root, workers would drop to nobody and lose the temp dir' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 30m;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://${u.hostname}:${u.port};
      proxy_buffering on;
      proxy_request_buffering on;
      proxy_read_timeout ${readTimeoutSeconds}s;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`;
  const confPath = path.join(dir, 'nginx.conf');
  await writeFile(confPath, conf);
  // -e: the log before the config is read (the default path may not be writable).
  const child: ChildProcess = spawn(NGINX, ['-e', 'stderr', '-p', dir, '-c', confPath, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Ready when it accepts connections (nginx prints nothing on success).
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`nginx did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
