import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import supertest from 'supertest';
import { as, register, type TestUser } from '../support/client.js';
import { unique } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { CHROMIUM, ChatPage, launchChromium, requireProgram } from './support-browser.js';

/** Receipts, handovers and relays: a few seconds is generous (a leader's lock goes stale in 3.5 s). */
const SOON = 8000;

/**
 * The web client across tabs and the features of issue 13: one long-poll for all the tabs of a
 * browser (the leader relays to the others, another takes over when it closes), the unread count
 * in the title, desktop notifications while hidden, search in a conversation.
 */
describe('browser client: tabs, title, notifications, search', function () {
  this.timeout(90_000);
  let stack: Stack;
  let url: string;
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const errors: string[] = [];

  before(async function () {
    this.timeout(60_000);
    requireProgram(this, CHROMIUM, 'Chromium');
    stack = await startStack({ backend: 'embedded' });
    url = stack.nodes[0]!.url;
    browser = await launchChromium();
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await stack?.close();
  });

  afterEach(function () {
    const errs = errors.splice(0);
    if (errs.length && this.currentTest?.state === 'passed') throw new Error(`page errors:\n${errs.join('\n')}`);
  });

  /** A page in `context`, its errors collected, its /api/events requests counted. */
  async function tab(context: BrowserContext): Promise<{ page: Page; chat: ChatPage; polls: () => number }> {
    const page = await context.newPage();
    let polls = 0;
    page.on('request', (r) => {
      if (new URL(r.url()).pathname === '/api/events') polls++;
    });
    const chat = new ChatPage(page, url);
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    await page.goto(`${url}/`);
    return { page, chat, polls: () => polls };
  }

  async function newContext(): Promise<BrowserContext> {
    const c = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    contexts.push(c);
    return c;
  }

  /** Someone else, through the API, who opens a direct conversation with `name`. */
  async function stranger(name: string): Promise<{ user: TestUser; conv: string; say: (text: string) => Promise<void> }> {
    const user = await register(url, 'bob');
    const conv = (await as(url, user).post('/api/conversations').send({ with: name }).expect(201)).body.conversation.id as string;
    return { user, conv, say: async (text: string) => void (await as(url, user).post(`/api/conversations/${conv}/messages`).send({ text }).expect(201)) };
  }

  const ready = (p: Page) => p.waitForSelector('body[data-ready="true"]', { timeout: SOON });

  it('two tabs share one long-poll: both show a message, the second never polls; closing the leader hands over without losing one', async () => {
    const context = await newContext();
    const first = await tab(context);
    const name = unique('alice');
    await first.chat.account('Register', name);
    await ready(first.page);
    const bob = await stranger(name);
    const second = await tab(context); // the saved session: logged in at once
    await ready(second.page);

    await bob.say('one message for both tabs');
    await first.chat.chatsList().getByText('one message for both tabs').waitFor({ timeout: SOON });
    await second.chat.chatsList().getByText('one message for both tabs').waitFor({ timeout: SOON });
    expect(first.polls()).to.be.at.least(1);
    expect(second.polls(), 'the second tab polls too').to.equal(0);
    expect(await second.page.evaluate('window.parleyApp.client.leader')).to.equal(false);

    // A third tab, the leader closes, and a message comes at once: nobody polls for a moment
    const third = await tab(context);
    await ready(third.page);
    expect(third.polls()).to.equal(0);
    const closedAt = Date.now();
    await first.page.close();
    await bob.say('sent as the leader left');
    await second.chat.chatsList().getByText('sent as the leader left').waitFor({ timeout: SOON });
    console.log(`      leader tab closed → message sent meanwhile shown by the next tab: ${Date.now() - closedAt} ms`);
    await third.chat.chatsList().getByText('sent as the leader left').waitFor({ timeout: SOON });
    const leaders = [await second.page.evaluate('window.parleyApp.client.leader'), await third.page.evaluate('window.parleyApp.client.leader')];
    expect(leaders.filter(Boolean), 'exactly one new leader').to.have.length(1);
    const [leader, follower] = leaders[0] ? [second, third] : [third, second];
    expect(leader.polls()).to.be.at.least(1);
    expect(follower.polls()).to.equal(0);
    // and the new leader relays what follows
    await bob.say('after the handover');
    await follower.chat.chatsList().getByText('after the handover').waitFor({ timeout: SOON });
    expect(follower.polls()).to.equal(0);
    // Only the message ever shows once per tab
    await follower.chat.openChat(bob.user.name);
    await follower.chat.message('sent as the leader left').waitFor({ timeout: SOON });
    expect(await follower.chat.messages().filter({ hasText: 'sent as the leader left' }).count()).to.equal(1);
  });

  it('a leader tab that vanishes without handing over (a crash) is replaced once its lock goes stale', async () => {
    const context = await newContext();
    const first = await tab(context);
    const name = unique('alice');
    await first.chat.account('Register', name);
    await ready(first.page);
    const bob = await stranger(name);
    const second = await tab(context);
    await ready(second.page);
    expect(await first.page.evaluate('window.parleyApp.client.leader')).to.equal(true);
    // As a crash would: the tab goes without removing its lock or saying bye
    await first.page.evaluate('window.parleyApp.client._tabsStop = function () {}');
    const closedAt = Date.now();
    await first.page.close();
    await bob.say('after the crash');
    await second.chat.chatsList().getByText('after the crash').waitFor({ timeout: SOON });
    const took = Date.now() - closedAt;
    console.log(`      leader tab crashed → message shown by the other tab: ${took} ms`);
    expect(await second.page.evaluate('window.parleyApp.client.leader')).to.equal(true);
    expect(second.polls()).to.be.at.least(1);
  });

  /** A page whose Notification is a stand-in that records, with a switch for "this tab is hidden". */
  async function watchedPage() {
    const context = await newContext();
    // (A string: tsx would wrap a named function in a helper the page lacks.)
    await context.addInitScript(`(function () {
      window.__notes = [];
      window.__hidden = false;
      var Fake = function (title, opts) { window.__notes.push({ title: title, body: opts.body }); };
      Fake.permission = 'granted';
      Fake.requestPermission = function (cb) { cb('granted'); };
      window.Notification = Fake;
      Object.defineProperty(document, 'hidden', { get: function () { return window.__hidden; } });
      Object.defineProperty(document, 'visibilityState', { get: function () { return window.__hidden ? 'hidden' : 'visible'; } });
    })()`);
    const me = await tab(context);
    const name = unique('alice');
    await me.chat.account('Register', name);
    await ready(me.page);
    const notes = async () => ((await me.page.evaluate('window.__notes')) as Array<{ title: string; body: string }>);
    const noted = (n: number) => me.page.waitForFunction((k) => (window as unknown as { __notes: unknown[] }).__notes.length >= k, n, { timeout: SOON });
    return { me, name, notes, noted };
  }

  it('the title counts unread messages; a hidden tab notifies of a message from someone else, not of mine from another device', async () => {
    const { me, name, notes, noted } = await watchedPage();
    const bob = await stranger(name);
    await me.page.evaluate('window.__hidden = true');
    await bob.say('while you were away');
    await noted(1);
    expect(await notes()).to.deep.equal([{ title: bob.user.name, body: 'while you were away' }]);
    await me.page.waitForFunction(() => document.title === '(1) Parley', undefined, { timeout: SOON });
    // mine, sent from another device, shows but does not notify
    const token = (await me.page.evaluate('window.parleyApp.client.token')) as string;
    await supertest(url).post(`/api/conversations/${bob.conv}/messages`).set('Authorization', `Bearer ${token}`).send({ text: 'mine, from my phone' }).expect(201);
    await bob.say('second from bob');
    await noted(2);
    await me.chat.chatsList().getByText('second from bob').waitFor({ timeout: SOON });
    expect((await notes()).map((n) => n.body)).to.deep.equal(['while you were away', 'second from bob']);
    expect(await me.page.title()).to.equal('(2) Parley');
    // visible again, the open chat is read: the title loses its count
    await me.page.evaluate('window.__hidden = false');
    await me.chat.openChat(bob.user.name);
    await me.page.waitForFunction(() => document.title === 'Parley', undefined, { timeout: SOON });
  });

  it('a muted chat neither notifies nor counts in the title', async function () {
    const { me, name, notes, noted } = await watchedPage();
    const bob = await stranger(name);
    const carl = await stranger(name);
    await carl.say('before the mute');
    await me.chat.openChat(carl.user.name);
    await me.page.getByRole('button', { name: 'Mute', exact: true }).click();
    await me.page.getByRole('button', { name: 'Unmute', exact: true }).waitFor({ timeout: SOON });
    await me.chat.chatsList().getByText('muted').waitFor();
    await me.page.evaluate('window.parleyApp.closeConversation()');
    await me.page.evaluate('window.__hidden = true');
    await carl.say('muted chatter');
    await bob.say('from bob, not muted');
    await noted(1);
    await me.chat.chatsList().getByText('muted chatter').waitFor({ timeout: SOON });
    expect((await notes()).map((n) => n.body)).to.deep.equal(['from bob, not muted']);
    expect(await me.page.title()).to.equal('(1) Parley');
  });

  it('finds a message with the search box of a conversation', async () => {
    const context = await newContext();
    const me = await tab(context);
    const name = unique('alice');
    await me.chat.account('Register', name);
    await ready(me.page);
    const bob = await stranger(name);
    await bob.say('The Meeting moved to Thursday');
    await bob.say('something else');
    await me.chat.openChat(bob.user.name);
    await me.page.getByRole('button', { name: 'Search', exact: true }).click();
    await me.page.getByLabel('Search messages').fill('meeting');
    await me.page.getByRole('button', { name: 'Find', exact: true }).click();
    const results = me.page.getByRole('list', { name: 'Search results' }).getByRole('listitem');
    await results.first().waitFor({ timeout: SOON });
    expect(await results.count()).to.equal(1);
    expect(await results.first().innerText()).to.contain('The Meeting moved to Thursday');
    await me.page.getByLabel('Search messages').fill('nowhere to be found');
    await me.page.getByRole('button', { name: 'Find', exact: true }).click();
    await me.page.getByText('No messages found.').waitFor({ timeout: SOON });
  });
});
