import { expect } from 'chai';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import ts from 'typescript';
import { unique } from '../support/services.js';
import { CHROMIUM, ChatPage, NGINX, launchChromium, makePicture, requireProgram, startNginx, type Proxy } from './support-browser.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const PUBLIC = path.join(ROOT, 'public');

/** "Within a second" is the issue's promise for delivery and for a usable page on loopback. */
const ONE_SECOND = 1000;
/** The page's ordered scripts after parley.js (docs/client.md): each may use what the ones before it set. */
const PAGE_SCRIPTS = ['app-base.js', 'app-thread.js', 'app-lists.js', 'app.js'];
/** Receipts and presence ride the same long-poll as messages; a few seconds is generous. */
const SOON = 5000;

/**
 * `PARLEY_E2E_URL` points the suite at a server that is already running (a staging node, say)
 * instead of starting one; `PARLEY_SCREENSHOT=1` rewrites docs/screenshot.png.
 */
const EXTERNAL = process.env['PARLEY_E2E_URL'];

async function startServer(): Promise<{ url: string; close(): Promise<void> }> {
  if (EXTERNAL) return { url: EXTERNAL.replace(/\/$/, ''), close: async () => {} };
  // Imported here, not at the top: the budget tests above need no server at all.
  const { startStack } = await import('../support/stack.js');
  const stack = await startStack({ backend: 'embedded' });
  return { url: stack.nodes[0]!.url, close: () => stack.close() };
}

describe('browser client: budget and old-browser syntax', () => {
  it("keeps the page's own script and styles under 150 KB", () => {
    const files = readdirSync(PUBLIC).filter((f) => /\.(js|css)$/.test(f));
    const total = files.reduce((n, f) => n + statSync(path.join(PUBLIC, f)).size, 0);
    console.log(`      public/ script and styles: ${(total / 1024).toFixed(1)} KB (${files.join(', ')})`);
    expect(files).to.include.members(['parley.js', ...PAGE_SCRIPTS, 'style.css']);
    expect(total).to.be.below(150 * 1024);
  });

  it('writes its scripts in ES5 without fetch or Promise, so old browsers run them', () => {
    // ES2015+ syntax an ES5 engine would reject, found by walking TypeScript's syntax tree.
    const modern = new Set([
      ts.SyntaxKind.ArrowFunction,
      ts.SyntaxKind.ClassDeclaration,
      ts.SyntaxKind.ClassExpression,
      ts.SyntaxKind.TemplateExpression,
      ts.SyntaxKind.NoSubstitutionTemplateLiteral,
      ts.SyntaxKind.ForOfStatement,
      ts.SyntaxKind.SpreadElement,
      ts.SyntaxKind.ObjectBindingPattern,
      ts.SyntaxKind.ArrayBindingPattern,
      ts.SyntaxKind.ImportDeclaration,
      ts.SyntaxKind.ExportDeclaration,
      ts.SyntaxKind.AwaitExpression,
      ts.SyntaxKind.YieldExpression,
      ts.SyntaxKind.ShorthandPropertyAssignment,
    ]);
    const scripts = readdirSync(PUBLIC).filter((f) => f.endsWith('.js'));
    expect(scripts).to.include.members(['parley.js', 'app.js']);
    for (const file of scripts) {
      const src = readFileSync(path.join(PUBLIC, file), 'utf8');
      const sf = ts.createSourceFile(file, src, ts.ScriptTarget.ES5, true, ts.ScriptKind.JS);
      const found: string[] = [];
      const visit = (node: ts.Node) => {
        const where = `${file}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
        if (modern.has(node.kind)) found.push(`${ts.SyntaxKind[node.kind]} at ${where}`);
        if (ts.isVariableDeclarationList(node) && node.flags & (ts.NodeFlags.Let | ts.NodeFlags.Const)) found.push(`let/const at ${where}`);
        if (ts.isIdentifier(node) && (node.text === 'fetch' || node.text === 'Promise')) found.push(`${node.text} at ${where}`);
        if ((ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node)) && (node.asteriskToken || node.modifiers?.length)) found.push(`generator/async at ${where}`);
        ts.forEachChild(node, visit);
      };
      visit(sf);
      expect(found, file).to.deep.equal([]);
      expect((sf as unknown as { parseDiagnostics: unknown[] }).parseDiagnostics, `${file} parses`).to.have.length(0);
    }
  });

  it('serves the page with no inline script, inline handler or style attribute (the CSP forbids them)', () => {
    const html = readFileSync(path.join(PUBLIC, 'index.html'), 'utf8');
    expect(html).not.to.match(/<script(?![^>]*\bsrc=)[^>]*>/i);
    expect(html).not.to.match(/\son[a-z]+\s*=/i);
    expect(html).not.to.match(/\sstyle\s*=/i);
    expect(html).not.to.match(/https?:\/\/(?!www\.w3\.org)/i);
  });

  it('loads every script of public/ from index.html, the client library first and app.js (which starts the page) last', () => {
    const html = readFileSync(path.join(PUBLIC, 'index.html'), 'utf8');
    const loaded = [...html.matchAll(/<script src="([^"]+)"><\/script>/g)].map((m) => m[1]);
    expect(loaded).to.deep.equal(['parley.js', ...PAGE_SCRIPTS]);
    const present = readdirSync(PUBLIC).filter((f) => f.endsWith('.js'));
    expect(present).to.have.members(loaded);
  });
});

describe('browser client in Chromium', function () {
  this.timeout(60_000);
  let server: { url: string; close(): Promise<void> };
  let browser: Browser;
  const pages: ChatPage[] = [];

  before(async function () {
    this.timeout(60_000);
    requireProgram(this, CHROMIUM, 'Chromium');
    server = await startServer();
    browser = await launchChromium();
  });

  after(async () => {
    for (const p of pages) await p.close().catch(() => {});
    await browser?.close();
    await server?.close();
  });

  afterEach(function () {
    // Any script error or CSP violation in any page fails the test that caused it.
    const errs = pages.flatMap((p) => p.errors.splice(0));
    if (errs.length && this.currentTest?.state === 'passed') throw new Error(`page errors:\n${errs.join('\n')}`);
  });

  async function person(viewport?: { width: number; height: number }): Promise<ChatPage> {
    const p = await ChatPage.open(browser, server.url, viewport);
    pages.push(p);
    return p;
  }

  describe('alice and bob', () => {
    let alice: ChatPage;
    let bob: ChatPage;
    let aliceName: string;
    let bobName: string;
    const hello = 'Hi Bob! Are we still on for lunch?';

    before(async () => {
      aliceName = unique('alice');
      bobName = unique('bob');
      alice = await person();
      bob = await person();
      await alice.account('Register', aliceName);
      await bob.account('Register', bobName);
    });

    it('bob sees alice online as soon as she starts a chat with him', async () => {
      await alice.startChat(bobName);
      const item = bob.contact(aliceName);
      await item.filter({ hasText: /\bonline\b/ }).waitFor({ timeout: SOON });
      expect(await item.innerText()).to.match(/\bonline\b/).and.not.match(/offline/);
      // alice, a stranger to bob, does not see him online until he consents (here through the API,
      // as a script of his would: the page's Accept is tried below)
      expect(await alice.contact(bobName).innerText()).to.not.match(/\bonline\b/);
      const conv = (await api(server.url, 'GET', '/api/conversations', undefined, await bob.token())).body as { conversations: Array<{ id: string }> };
      expect((await api(server.url, 'POST', `/api/conversations/${conv.conversations[0]!.id}/accept`, {}, await bob.token())).status).to.equal(204);
      // And then alice sees bob the same way.
      await alice.contact(bobName).filter({ hasText: /\bonline\b/ }).waitFor({ timeout: SOON });
    });

    it("alice's message appears for bob within a second, with an unread count", async () => {
      await alice.recordTicks(hello);
      // Both pages run in one browser on one machine: one clock, from alice's press of Send
      // to the text on bob's screen.
      const elapsed = await alice.latencyTo(bob, hello);
      console.log(`      alice presses Send → text on bob's screen: ${elapsed} ms`);
      expect(elapsed).to.be.below(ONE_SECOND);
      await bob.chatsList().getByLabel('1 unread').waitFor({ timeout: SOON });
    });

    it("alice's tick goes sent → delivered, then read as bob opens the chat", async () => {
      const tick = alice.message(hello).getByRole('img', { name: 'delivered' });
      await tick.waitFor({ timeout: SOON });
      // Delivered is not read: bob has not opened the chat.
      expect(await alice.message(hello).getByRole('img', { name: 'read' }).count()).to.equal(0);
      await bob.openChat(aliceName);
      await bob.message(hello).waitFor();
      await alice.message(hello).getByRole('img', { name: 'read' }).waitFor({ timeout: SOON });
      const seen = (await alice.ticks()).filter((t) => t !== 'sending');
      expect(seen).to.deep.equal(['sent', 'delivered', 'read']);
      expect(await bob.chatsList().getByLabel(/unread/).count()).to.equal(0);
    });

    it('bob sees "alice is typing…" while she types', async () => {
      await alice.page.getByLabel('Message', { exact: true }).pressSequentially('Sounds', { delay: 20 });
      await bob.page.getByText(`${aliceName} is typing…`).waitFor({ timeout: SOON });
      await alice.page.getByLabel('Message', { exact: true }).fill('');
    });

    it("bob's picture shows as a thumbnail for alice, and the original opens from it", async function () {
      await bob.send('Yes! 12:30 at the usual place. Here is the view:');
      await bob.attach('view.png', 'image/png', await makePicture());
      const img = alice.messages().locator('.att-img img');
      await img.waitFor({ timeout: SOON });
      await alice.page.waitForFunction(
        () => {
          const i = document.querySelector<HTMLImageElement>('.messages .att-img img');
          return !!i && i.complete && i.naturalWidth > 0;
        },
        undefined,
        { timeout: 15_000 },
      );
      const src = await img.getAttribute('src');
      expect(src).to.match(/thumbnail/);
      // A short-lived file grant in the URL, never the account's token (issue 11 item 10)
      expect(src).to.match(/[?&]grant=/);
      expect(src).to.not.match(/access_token/);
      // The thumbnail is smaller than the original and the link opens the original.
      const href = await alice.messages().locator('.att-img').getAttribute('href');
      expect(href).to.be.a('string').and.not.match(/thumbnail/);
      const original = await alice.page.request.get(new URL(href!, server.url).toString());
      expect(original.status()).to.equal(200);
      expect(original.headers()['content-type']).to.match(/^image\/png/);
      // Bob's own copy confirms: the tick is there and no second copy of the picture.
      await bob.messages().locator('.att-img img').first().waitFor();
      expect(await bob.messages().locator('.att-img').count()).to.equal(1);
    });

    it('reloading the page keeps the history and shows no message twice', async () => {
      const before = await bob.page.evaluate(() => Array.from(document.querySelectorAll('.messages li.msg')).map((li) => li.textContent));
      expect(before.length).to.be.greaterThan(0);
      await bob.page.reload();
      await bob.openChat(aliceName);
      await bob.message(hello).waitFor();
      // Let any replayed events land before counting.
      await bob.page.waitForTimeout(500);
      const after = await bob.page.evaluate(() => Array.from(document.querySelectorAll('.messages li.msg')).map((li) => li.textContent));
      expect(after).to.deep.equal(before);
      expect(await bob.message(hello).count()).to.equal(1);
      // A message sent after the reload still arrives, once.
      const later = 'still here after the reload';
      await alice.send(later);
      await bob.message(later).waitFor({ timeout: SOON });
      await bob.page.waitForTimeout(300);
      expect(await bob.message(later).count()).to.equal(1);
    });

    it('a send whose answer is lost is retried with the same client_id and shown once', async () => {
      const text = 'this answer gets lost on the way back';
      let lost = 0;
      const posts: string[] = [];
      await alice.page.route('**/api/conversations/*/messages', async (route) => {
        if (route.request().method() !== 'POST') return route.continue();
        posts.push(route.request().postData() ?? '');
        if (lost === 0) {
          lost++;
          await route.fetch(); // the server stores it…
          return route.abort('connectionreset'); // …and the answer never arrives
        }
        return route.continue();
      });
      await alice.send(text);
      await bob.message(text).waitFor({ timeout: 10_000 });
      await alice.message(text).getByRole('img', { name: /sent|delivered|read/ }).waitFor({ timeout: 10_000 });
      // The stream may confirm the message before the retry: wait until the outbox is empty.
      await alice.page.waitForFunction(() => (window as unknown as App).parleyApp.client.pending().length === 0, undefined, { timeout: 10_000 });
      await alice.page.unroute('**/api/conversations/*/messages');
      expect(posts.length).to.be.at.least(2);
      const ids = posts.map((p) => (JSON.parse(p) as { client_id: string }).client_id);
      expect(new Set(ids).size).to.equal(1);
      await bob.page.waitForTimeout(300);
      expect(await bob.message(text).count()).to.equal(1);
      expect(await alice.message(text).count()).to.equal(1);
    });

    it('sending while offline queues the message and sends it when the connection returns', async () => {
      const text = 'written in a tunnel';
      await alice.context.setOffline(true);
      await alice.send(text);
      await alice.message(text).getByRole('img', { name: 'sending' }).waitFor();
      await alice.page.waitForTimeout(1500);
      expect(await bob.message(text).count()).to.equal(0);
      await alice.context.setOffline(false);
      await bob.message(text).waitFor({ timeout: 10_000 });
      await alice.message(text).getByRole('img', { name: /sent|delivered|read/ }).waitFor({ timeout: 10_000 });
      expect(await bob.message(text).count()).to.equal(1);
    });

    it('in a group, alice sees "read by N" grow as members read, the tick turns read when all have, and adds a member', async () => {
      // Carol uses the API directly (a script, say): the page is only needed for alice and bob.
      const carolName = unique('carol');
      const carol = await api(server.url, 'POST', '/api/register', { name: carolName, password: 'correct horse' });
      const carolToken = (carol.body as { token: string }).token;
      await alice.page.getByRole('button', { name: 'New group' }).click();
      await alice.page.getByLabel('Group name').fill('Lunch crew');
      await alice.page.getByLabel(/^Members/).fill(`${bobName}, ${carolName}`);
      await alice.page.getByRole('button', { name: 'Create group' }).click();
      await alice.page.getByRole('heading', { name: 'Lunch crew' }).waitFor();
      const text = 'pizza on Friday?';
      await alice.send(text);
      const mine = alice.message(text);
      await mine.getByRole('img', { name: /sent|delivered/ }).waitFor({ timeout: SOON });
      await bob.openChat('Lunch crew');
      // bob was added by alice: his page asks before it shares what he reads
      await bob.page.getByRole('region', { name: 'Request' }).getByText('You were added to this group').waitFor({ timeout: SOON });
      expect(await mine.getByText('read by 1').count()).to.equal(0);
      await bob.page.getByRole('button', { name: 'Accept' }).click();
      await mine.getByText('read by 1').waitFor({ timeout: SOON });
      expect(await bob.page.getByRole('region', { name: 'Request' }).isVisible()).to.equal(false);
      expect(await mine.getByRole('img', { name: 'read' }).count()).to.equal(0);
      const conv = await alice.page.evaluate('window.parleyApp.state.current') as string;
      const history = await api(server.url, 'GET', `/api/conversations/${conv}/messages`, undefined, carolToken);
      const seq = (history.body as { messages: Array<{ seq: number; text: string }> }).messages.find((m) => m.text === text)!.seq;
      expect((await api(server.url, 'POST', `/api/conversations/${conv}/accept`, {}, carolToken)).status).to.equal(204);
      expect((await api(server.url, 'POST', `/api/conversations/${conv}/read`, { up_to: seq }, carolToken)).status).to.equal(204);
      await mine.getByText('read by 2').waitFor({ timeout: SOON });
      await mine.getByRole('img', { name: 'read' }).waitFor({ timeout: SOON });
      // Adding a member from the chat header: everyone's header lists them.
      const dan = unique('dan');
      await api(server.url, 'POST', '/api/register', { name: dan, password: 'correct horse' });
      await alice.page.getByRole('button', { name: 'Add member' }).click();
      await alice.page.getByLabel('Member name').fill(dan);
      await alice.page.getByRole('button', { name: 'Add', exact: true }).click();
      await alice.page.locator('#chat-sub').filter({ hasText: dan }).waitFor({ timeout: SOON });
      await bob.page.locator('#chat-sub').filter({ hasText: dan }).waitFor({ timeout: SOON });
    });

    it('drops a saved cursor the server rejects and keeps receiving', async () => {
      await bob.page.evaluate((name) => localStorage.setItem(`parley.cursor.${name}`, 'not-a-cursor!'), bobName);
      await bob.page.reload();
      await bob.page.getByRole('button', { name: 'Log out' }).waitFor();
      const text = 'after a bad cursor';
      await alice.send(text);
      await bob.waitForText(text, SOON);
      const saved = await bob.page.evaluate((name) => localStorage.getItem(`parley.cursor.${name}`), bobName);
      expect(saved).to.be.a('string').and.not.equal('not-a-cursor!');
    });

    it('is usable within a second of loading', async () => {
      const t0 = Date.now();
      await alice.page.goto(`${server.url}/`);
      await alice.page.waitForFunction(() => document.body.getAttribute('data-ready') === 'true', undefined, { polling: 10, timeout: 5000 });
      await alice.chatsList().getByRole('listitem').first().waitFor();
      const elapsed = Date.now() - t0;
      const mark = await alice.page.evaluate(() => performance.getEntriesByName('parley-ready')[0]?.startTime ?? -1);
      console.log(`      logged-in page usable ${mark.toFixed(0)} ms after navigation start (${elapsed} ms as the test driver sees it)`);
      // The page's own clock, from navigation start to lists shown: the driver's figure adds
      // Playwright's round trips and the previous page's unload, which no user waits for.
      expect(mark).to.be.above(0).and.below(ONE_SECOND);
    });
  });

  it('says so on a wrong password, and logging out brings the login back, also after a reload', async () => {
    const name = unique('ivy');
    await api(server.url, 'POST', '/api/register', { name, password: 'correct horse' });
    const ivy = await person();
    await ivy.page.getByLabel('Name', { exact: true }).fill(name);
    await ivy.page.getByLabel('Password', { exact: true }).fill('wrong horse');
    await ivy.page.getByRole('button', { name: 'Log in', exact: true }).click();
    await ivy.page.getByRole('alert').filter({ hasText: 'Wrong name or password.' }).waitFor({ timeout: SOON });
    await ivy.account('Log in', name);
    await ivy.page.getByRole('button', { name: 'Log out' }).click();
    await ivy.page.getByRole('button', { name: 'Log in', exact: true }).waitFor();
    await ivy.page.reload();
    await ivy.page.getByRole('button', { name: 'Log in', exact: true }).waitFor();
    expect(await ivy.page.getByRole('button', { name: 'Log out' }).count()).to.equal(0);
  });

  it('loads earlier history as the chat scrolls up, in order and without repeats', async () => {
    const reader = unique('reader');
    const writer = unique('writer');
    const r = await api(server.url, 'POST', '/api/register', { name: reader, password: 'correct horse' });
    const readerToken = (r.body as { token: string }).token;
    const w = await api(server.url, 'POST', '/api/register', { name: writer, password: 'correct horse' });
    const token = (w.body as { token: string }).token;
    const conv = await api(server.url, 'POST', '/api/conversations', { with: reader }, token);
    const id = (conv.body as { conversation: { id: string } }).conversation.id;
    for (let i = 1; i <= 70; i++) await api(server.url, 'POST', `/api/conversations/${id}/messages`, { text: `old message ${i}.` }, token);
    // The reader's phone has already received them all (polled and acknowledged), so the page,
    // a new device, gets them from history rather than from the events stream.
    let cursor = '';
    for (let more = true; more; ) {
      const ev = await api(server.url, 'GET', `/api/events?wait=0${cursor ? `&since=${encodeURIComponent(cursor)}` : ''}`, undefined, readerToken);
      const b = ev.body as { cursor: string; events: unknown[] };
      more = b.events.length > 0;
      cursor = b.cursor;
    }
    const page = await person();
    await page.account('Log in', reader);
    await page.openChat(writer);
    await page.message('old message 70.').waitFor();
    const texts = () => page.page.evaluate(() => Array.from(document.querySelectorAll('.messages li.msg .text')).map((e) => e.textContent));
    expect((await texts()).length).to.equal(50); // one page
    await page.page.evaluate(() => { document.getElementById('scroller')!.scrollTop = 0; });
    await page.message('old message 1.').waitFor({ timeout: SOON });
    expect(await texts()).to.deep.equal(Array.from({ length: 70 }, (_, i) => `old message ${i + 1}.`));
    // The view stayed where the reader was instead of jumping to the oldest message.
    expect(await page.page.evaluate(() => document.getElementById('scroller')!.scrollTop)).to.be.greaterThan(0);
  });

  it('embeds: parley.js on a page of another origin logs in, receives and sends through CORS', async () => {
    const host = unique('host');
    const guest = unique('guest');
    const h = await api(server.url, 'POST', '/api/register', { name: host, password: 'correct horse' });
    await api(server.url, 'POST', '/api/register', { name: guest, password: 'correct horse' });
    const hostToken = (h.body as { token: string }).token;
    const conv = await api(server.url, 'POST', '/api/conversations', { with: guest }, hostToken);
    const id = (conv.body as { conversation: { id: string } }).conversation.id;
    // Another origin (another port): a page that only includes parley.js from the Parley server.
    const script = `
      var client = new Parley.Client({ base: ${JSON.stringify(server.url)}, storage: null });
      client.on('message', function (m) {
        var li = document.createElement('li');
        li.appendChild(document.createTextNode(m.from + ': ' + m.text));
        document.getElementById('log').appendChild(li);
        if (m.from !== ${JSON.stringify(guest)}) client.send(m.conversation, 'got it: ' + m.text);
      });
      client.login(${JSON.stringify(guest)}, 'correct horse', function (err) {
        if (err) { document.title = 'error ' + err.code; return; }
        client.start();
        document.title = 'ready';
      });`;
    const other = http.createServer((req, res) => {
      if (req.url === '/embed.js') return void res.writeHead(200, { 'Content-Type': 'application/javascript' }).end(script);
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end(`<!DOCTYPE html><title>loading</title><ul id="log"></ul><script src="${server.url}/parley.js"></script><script src="/embed.js"></script>`);
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const page = await person();
      await page.page.goto(`http://127.0.0.1:${(other.address() as AddressInfo).port}/`);
      await page.page.waitForFunction(() => document.title !== 'loading', undefined, { timeout: SOON });
      expect(await page.page.title()).to.equal('ready');
      await page.page.waitForTimeout(200); // the first poll is on its way
      const t0 = Date.now();
      await api(server.url, 'POST', `/api/conversations/${id}/messages`, { text: 'hello, embedded guest' }, hostToken);
      await page.waitForText(`${host}: hello, embedded guest`, ONE_SECOND);
      console.log(`      API send → embedded page on another origin: ${Date.now() - t0} ms`);
      // …and the page's reply reached the server.
      const deadline = Date.now() + SOON;
      let texts: string[] = [];
      while (Date.now() < deadline && !texts.includes('got it: hello, embedded guest')) {
        const hist = await api(server.url, 'GET', `/api/conversations/${id}/messages`, undefined, hostToken);
        texts = (hist.body as { messages: Array<{ text: string }> }).messages.map((m) => m.text);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(texts).to.include('got it: hello, embedded guest');
    } finally {
      other.closeAllConnections();
      await new Promise((r) => other.close(r));
    }
  });

  describe('degrading', () => {
    it('moves the token into the query when a proxy strips the Authorization header', async () => {
      const jo = await person();
      const joName = unique('jo');
      const kim = unique('kim');
      const k = await api(server.url, 'POST', '/api/register', { name: kim, password: 'correct horse' });
      const kimToken = (k.body as { token: string }).token;
      let stripped = 0;
      await jo.page.route('**/api/**', (route) => {
        const headers = { ...route.request().headers() };
        if (headers['authorization']) {
          stripped++;
          delete headers['authorization'];
        }
        return route.continue({ headers });
      });
      await jo.account('Register', joName);
      const conv = await api(server.url, 'POST', '/api/conversations', { with: joName }, kimToken);
      const id = (conv.body as { conversation: { id: string } }).conversation.id;
      await api(server.url, 'POST', `/api/conversations/${id}/messages`, { text: 'can you hear me?' }, kimToken);
      await jo.openChat(kim);
      await jo.message('can you hear me?').waitFor({ timeout: SOON });
      await jo.send('loud and clear');
      await jo.message('loud and clear').getByRole('img', { name: /sent|delivered|read/ }).waitFor({ timeout: SOON });
      expect(stripped).to.be.at.least(1);
      expect(await jo.page.getByRole('button', { name: 'Log out' }).count()).to.equal(1); // still logged in
      expect(await jo.page.evaluate(() => (window as unknown as { parleyApp: { client: { _tokenInQuery: boolean } } }).parleyApp.client._tokenInQuery)).to.equal(true);
    });

    it('falls back to POST, then to JSONP, when a proxy refuses the long-poll request', async () => {
      const carol = await person();
      const dave = await person();
      const carolName = unique('carol');
      const daveName = unique('dave');
      await carol.account('Register', carolName);
      await dave.account('Register', daveName);
      // Dave sits behind a proxy that answers XHR long-polls with an HTML error page.
      let refused = 0;
      await dave.page.route('**/api/events*', (route) => {
        if (route.request().resourceType() === 'xhr') {
          refused++;
          return route.fulfill({ status: 405, contentType: 'text/html', body: '<html><body>Blocked by proxy</body></html>' });
        }
        return route.continue();
      });
      await carol.startChat(daveName);
      const text = 'can you read this through that proxy?';
      await carol.send(text);
      await dave.waitForText(text, 10_000);
      // The text can show (in the conversation list) before the client has finished falling back:
      // wait for the mode to settle, then check the path it took.
      const modeOf = () => dave.page.evaluate(() => (window as unknown as App).parleyApp.client.mode);
      await dave.page.waitForFunction(() => (window as unknown as App).parleyApp.client.mode === 'jsonp', undefined, { timeout: 10_000 }).catch(() => {});
      expect(await modeOf()).to.equal('jsonp');
      expect(refused).to.be.at.least(2); // GET, then POST
      // Once on JSONP, delivery is as quick as ever.
      const elapsed = await carol.latencyTo(dave, 'and this one?');
      console.log(`      carol → dave over JSONP: ${elapsed} ms`);
      expect(elapsed).to.be.below(ONE_SECOND);
    });
  });
});

describe('README screenshot (PARLEY_SCREENSHOT=1)', function () {
  this.timeout(120_000);
  let server: { url: string; close(): Promise<void> };
  let browser: Browser;

  before(async function () {
    if (!process.env['PARLEY_SCREENSHOT']) this.skip();
    requireProgram(this, CHROMIUM, 'Chromium');
    server = await startServer();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('writes docs/screenshot.png: a real chat at desktop width, and a phone-width view to look at', async () => {
    const alice = await ChatPage.open(browser, server.url);
    const bob = await ChatPage.open(browser, server.url);
    const carol = await ChatPage.open(browser, server.url);
    await alice.account('Register', 'alice');
    await bob.account('Register', 'bob');
    await carol.account('Register', 'carol');
    await carol.page.getByRole('button', { name: 'New group' }).click();
    await carol.page.getByLabel('Group name').fill('Lunch crew');
    await carol.page.getByLabel(/^Members/).fill('alice, bob');
    await carol.page.getByRole('button', { name: 'Create group' }).click();
    await carol.page.getByRole('heading', { name: 'Lunch crew' }).waitFor();
    await carol.send('Pizza on Friday?');
    await bob.startChat('alice');
    await bob.send('Morning! Did the slides arrive?');
    await alice.openChat('bob');
    await alice.send('They did, looking at them now. Nice work!');
    await bob.send('Here is the view from the new office:');
    await bob.attach('office-view.png', 'image/png', await makePicture());
    await bob.attach('q3-plan.txt', 'text/plain', Buffer.from('Q3 plan\n'.repeat(400)));
    await alice.message('q3-plan.txt').waitFor({ timeout: SOON });
    await alice.send('Lovely. Lunch at 12:30?');
    await alice.message('Lunch at 12:30').getByRole('img', { name: 'read' }).waitFor({ timeout: SOON });
    await bob.page.getByLabel('Message', { exact: true }).pressSequentially('Sure', { delay: 20 });
    await alice.page.getByText('bob is typing…').waitFor({ timeout: SOON });
    await alice.page.waitForFunction(() => Array.from(document.querySelectorAll<HTMLImageElement>('.messages img')).every((i) => i.complete && i.naturalWidth > 0));
    await alice.page.screenshot({ path: path.join(ROOT, 'docs', 'screenshot.png') });

    const phone = await ChatPage.open(browser, server.url, { width: 390, height: 800 });
    await phone.account('Log in', 'alice');
    await phone.page.screenshot({ path: path.join(process.env['TMPDIR'] ?? '/tmp', 'parley-phone-list.png') });
    await phone.openChat('bob');
    await phone.page.waitForTimeout(500);
    await phone.page.screenshot({ path: path.join(process.env['TMPDIR'] ?? '/tmp', 'parley-phone-chat.png') });
    for (const p of [alice, bob, carol, phone]) {
      expect(p.errors).to.deep.equal([]);
      await p.close();
    }
  });
});

/** What the page exposes as window.parleyApp (for the tests' look inside). */
interface App {
  parleyApp: { client: { wait: number; mode: string; token: string; connected: boolean; pending(): unknown[] }; state: { current: string } };
}

/** A plain API call from the test (for a third person who needs no browser). */
async function api(base: string, method: string, p: string, body?: unknown, token?: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(base + p, {
    method,
    headers: { ...(body ? { 'Content-Type': 'application/json' } : {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as unknown) : null };
}

describe('browser client through nginx (buffering, 30 s read timeout)', function () {
  this.timeout(90_000);
  let server: { url: string; close(): Promise<void> };
  let proxy: Proxy;
  let browser: Browser;
  const pages: ChatPage[] = [];

  before(async function () {
    this.timeout(60_000);
    requireProgram(this, CHROMIUM, 'Chromium');
    requireProgram(this, NGINX, 'nginx');
    server = await startServer();
    proxy = await startNginx(server.url);
    browser = await launchChromium();
  });

  after(async () => {
    for (const p of pages) await p.close().catch(() => {});
    await browser?.close();
    await proxy?.close();
    await server?.close();
  });

  it('delivers within a second, also after the long-poll has idled past the hold', async () => {
    const erin = await ChatPage.open(browser, proxy.url);
    const frank = await ChatPage.open(browser, proxy.url);
    pages.push(erin, frank);
    const erinName = unique('erin');
    const frankName = unique('frank');
    await erin.account('Register', erinName);
    await frank.account('Register', frankName);
    await erin.startChat(frankName);
    await frank.contact(erinName).filter({ hasText: /\bonline\b/ }).waitFor({ timeout: SOON });

    let elapsed = await erin.latencyTo(frank, 'through the proxy');
    console.log(`      erin → frank through nginx: ${elapsed} ms`);
    expect(elapsed).to.be.below(ONE_SECOND);

    // Idle for longer than one held poll (25 s), so the next message rides a poll that
    // followed a held one answered through nginx's buffers.
    await frank.page.waitForTimeout(27_000);
    elapsed = await erin.latencyTo(frank, 'still there after the quiet');
    console.log(`      erin → frank through nginx after 27 s idle: ${elapsed} ms`);
    expect(elapsed).to.be.below(ONE_SECOND);
    await frank.openChat(erinName);
    // erin is a stranger to frank: his page asks; once he accepts, erin's ticks turn read
    await frank.page.getByText(`${erinName} wants to chat with you`).waitFor({ timeout: SOON });
    expect(await erin.message('still there after the quiet').getByRole('img', { name: 'read' }).count()).to.equal(0);
    await frank.page.getByRole('button', { name: 'Accept' }).click();
    await erin.message('still there after the quiet').getByRole('img', { name: 'read' }).waitFor({ timeout: SOON });
    expect(await frank.message('through the proxy').count()).to.equal(1);
    expect([...erin.errors, ...frank.errors]).to.deep.equal([]);
  });

  it('behind a proxy that cuts held requests at 8 s, the client holds for less and still delivers within a second', async () => {
    const short = await startNginx(server.url, 8);
    try {
      const gina = await ChatPage.open(browser, short.url);
      const hal = await ChatPage.open(browser, short.url);
      pages.push(gina, hal);
      const ginaName = unique('gina');
      const halName = unique('hal');
      await gina.account('Register', ginaName);
      await hal.account('Register', halName);
      await gina.startChat(halName);
      await hal.contact(ginaName).waitFor({ timeout: SOON });
      // hal's first quiet poll (25 s) is cut at 8 s by nginx's 504: the client learns.
      await hal.page.waitForFunction(() => (window as unknown as App).parleyApp.client.wait < 8, undefined, { timeout: 20_000 });
      const wait = (await hal.page.evaluate('window.parleyApp.client.wait')) as number;
      console.log(`      hold after nginx cut a 25 s poll at 8 s: ${wait} s`);
      // A full shorter hold later, the loop is quietly long-polling again.
      await hal.page.waitForTimeout((wait + 1) * 1000);
      expect(await hal.page.evaluate('window.parleyApp.client.connected')).to.equal(true);
      const elapsed = await gina.latencyTo(hal, 'made it past the impatient proxy');
      console.log(`      gina → hal through nginx with an 8 s read timeout: ${elapsed} ms`);
      expect(elapsed).to.be.below(ONE_SECOND);
    } finally {
      await short.close();
    }
  });
});
