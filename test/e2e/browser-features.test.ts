import { expect } from 'chai';
import type { Browser } from 'playwright-core';
import supertest from 'supertest';
import { as, register } from '../support/client.js';
import { unique } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { CHROMIUM, ChatPage, launchChromium, requireProgram } from './support-browser.js';

const SOON = 8000;

/** What one person does on their page, the other sees on theirs: message changes, groups, accounts. */
describe('browser client: issue 13 features between two people', function () {
  this.timeout(90_000);
  let stack: Stack;
  let url: string;
  let browser: Browser;
  const pages: ChatPage[] = [];

  before(async function () {
    this.timeout(60_000);
    requireProgram(this, CHROMIUM, 'Chromium');
    stack = await startStack({ backend: 'embedded' });
    url = stack.nodes[0]!.url;
    browser = await launchChromium();
  });

  after(async () => {
    for (const p of pages) await p.close().catch(() => {});
    await browser?.close();
    await stack?.close();
  });

  afterEach(function () {
    const errs = pages.flatMap((p) => p.errors.splice(0));
    if (errs.length && this.currentTest?.state === 'passed') throw new Error(`page errors:\n${errs.join('\n')}`);
  });

  async function pair() {
    const alice = await ChatPage.open(browser, url);
    const bob = await ChatPage.open(browser, url);
    pages.push(alice, bob);
    const aliceName = unique('alice');
    const bobName = unique('bob');
    await alice.account('Register', aliceName);
    await bob.account('Register', bobName);
    await alice.startChat(bobName);
    return { alice, bob, aliceName, bobName };
  }

  it('edit, reply, reactions and delete made on one page show on the other', async function () {
    const { alice, bob, aliceName } = await pair();
    await alice.send('the original words');
    await bob.openChat(aliceName);
    await bob.message('the original words').waitFor({ timeout: SOON });

    // alice edits: bob sees the new text, marked edited
    await alice.message('the original words').getByRole('button', { name: 'Edit', exact: true }).click();
    await alice.page.getByText('Editing your message').waitFor();
    await alice.type('the corrected words');
    await alice.page.getByRole('button', { name: 'Send', exact: true }).click();
    // the message itself, not the reply that quotes it
    const corrected = (p: ChatPage) => p.messages().filter({ hasText: 'the corrected words', hasNot: p.page.locator('.quote') });
    const edited = corrected(bob);
    await edited.waitFor({ timeout: SOON });
    expect(await edited.innerText()).to.contain('edited');
    expect(await bob.messages().filter({ hasText: 'the original words' }).count()).to.equal(0);
    // bob may not edit or delete alice's message in their direct chat: the page does not offer it
    expect(await edited.getByRole('button', { name: 'Reply', exact: true }).count()).to.equal(1);
    expect(await edited.getByRole('button', { name: 'Edit', exact: true }).count()).to.equal(0);
    expect(await edited.getByRole('button', { name: 'Delete', exact: true }).count()).to.equal(0);

    // bob replies: alice sees the quote above his answer
    await edited.getByRole('button', { name: 'Reply', exact: true }).click();
    await bob.page.getByText(/Replying to /).waitFor();
    await bob.send('my answer to that');
    const answer = alice.message('my answer to that');
    await answer.waitFor({ timeout: SOON });
    expect(await answer.locator('.quote').innerText()).to.contain('the corrected words');

    // bob reacts: alice sees the count; alice adds hers, then bob takes his back
    await edited.getByRole('button', { name: 'React', exact: true }).click();
    await bob.page.getByRole('button', { name: 'React 👍' }).click();
    const onAlice = corrected(alice).locator('.reaction', { hasText: '👍' });
    await onAlice.filter({ hasText: '👍 1' }).waitFor({ timeout: SOON });
    await onAlice.click();
    await corrected(bob).locator('.reaction', { hasText: '👍 2' }).waitFor({ timeout: SOON });
    expect(await corrected(bob).locator('.reaction').getAttribute('aria-pressed')).to.equal('true');
    await corrected(bob).locator('.reaction').click();
    await onAlice.filter({ hasText: '👍 1' }).waitFor({ timeout: SOON });
    expect(await onAlice.getAttribute('aria-pressed')).to.equal('true');

    // alice deletes: bob sees the tombstone, and his reply's quote says so too
    alice.page.once('dialog', (d) => void d.accept());
    await corrected(alice).getByRole('button', { name: 'Delete', exact: true }).click();
    const tombstone = bob.messages().filter({ hasText: 'message deleted', hasNot: bob.page.locator('.quote') });
    await tombstone.waitFor({ timeout: SOON });
    expect(await tombstone.getByRole('button').count(), 'a tombstone offers nothing').to.equal(0);
    expect(await corrected(bob).count()).to.equal(0);
    await bob.message('my answer to that').locator('.quote', { hasText: 'message deleted' }).waitFor({ timeout: SOON });
    // his own answer he may edit and delete
    expect(await bob.message('my answer to that').getByRole('button', { name: 'Edit', exact: true }).count()).to.equal(1);
  });

  it('a group renamed on the owner\'s page, an invite link opened by someone new, who joins', async function () {
    const owner = await ChatPage.open(browser, url);
    const carl = await ChatPage.open(browser, url);
    pages.push(owner, carl);
    const ownerName = unique('own');
    await owner.account('Register', ownerName);
    await carl.account('Register', unique('carl'));
    const ann = await register(url, 'ann');
    const token = await owner.token();
    const conv = (await as(url, { name: ownerName, token }).post('/api/conversations').send({ title: 'Book club', members: [ann.name] }).expect(201)).body
      .conversation as { id: string };
    await owner.openChat('Book club');
    await owner.page.getByRole('button', { name: 'Group', exact: true }).click();
    await owner.page.getByLabel('Rename to').fill('Reading circle');
    await owner.page.getByRole('button', { name: 'Rename', exact: true }).click();
    await owner.page.getByRole('heading', { name: 'Reading circle', exact: true }).waitFor({ timeout: SOON });
    const list = (await as(url, ann).get('/api/conversations').expect(200)).body.conversations as Array<{ id: string; title: string }>;
    expect(list.find((c) => c.id === conv.id)!.title).to.equal('Reading circle');

    await owner.page.getByRole('button', { name: 'Create invite link', exact: true }).click();
    const link = owner.page.getByLabel('Invite link');
    await link.waitFor();
    const inviteUrl = await link.inputValue();
    expect(inviteUrl).to.match(/\/join\/[\w-]+$/);
    await carl.page.goto(inviteUrl);
    await carl.page.getByText(/Join "Reading circle" \(2 members\)\?/).waitFor({ timeout: SOON });
    await carl.page.getByRole('button', { name: 'Join group', exact: true }).click();
    await carl.page.getByRole('heading', { name: 'Reading circle', exact: true }).waitFor({ timeout: SOON });
    expect(new URL(carl.page.url()).pathname).to.equal('/');
    await owner.page.getByText(/3 members/).waitFor({ timeout: SOON });
  });

  it('a display name set on the account page shows on the other page; a muted chat says so', async function () {
    const { alice, bob } = await pair();
    await alice.send('hello there');
    await bob.chatsList().getByText('hello there').waitFor({ timeout: SOON });
    await alice.page.getByRole('button', { name: 'Account', exact: true }).click();
    await alice.page.getByLabel('Display name').fill('Alice Liddell');
    await alice.page.getByRole('button', { name: 'Save name', exact: true }).click();
    await alice.page.getByText('Saved.').waitFor({ timeout: SOON });
    await bob.chatsList().getByText('Alice Liddell').waitFor({ timeout: SOON });
    await alice.page.getByRole('list', { name: 'Devices' }).getByText('(this device)').waitFor({ timeout: SOON });
    await alice.page.getByRole('button', { name: 'Close account', exact: true }).click();

    await bob.chatsList().getByRole('button', { name: /Alice Liddell/ }).click();
    await bob.page.getByRole('button', { name: 'Mute', exact: true }).click();
    await bob.page.getByRole('button', { name: 'Unmute', exact: true }).waitFor({ timeout: SOON });
    await bob.chatsList().getByText('muted', { exact: true }).waitFor();
  });

  it('a password changed on the account page logs my other device out; deleting the account brings back the login', async function () {
    const laptop = await ChatPage.open(browser, url);
    const phone = await ChatPage.open(browser, url);
    pages.push(laptop, phone);
    const name = unique('dora');
    await laptop.account('Register', name);
    await phone.account('Log in', name);
    await laptop.page.getByRole('button', { name: 'Account', exact: true }).click();
    const devices = laptop.page.getByRole('list', { name: 'Devices' }).getByRole('listitem');
    await devices.nth(1).waitFor({ timeout: SOON });
    expect(await devices.count()).to.equal(2);
    await laptop.page.getByLabel('Current password').fill('correct horse');
    await laptop.page.getByLabel('New password').fill('a new horse battery');
    await laptop.page.getByRole('button', { name: 'Change password', exact: true }).click();
    await laptop.page.getByText(/Password changed/).waitFor({ timeout: SOON });
    // its held poll answers 401 when it ends (a held poll is not woken by the sign-out): within a wait of 25 s
    await phone.page.getByText('Your session ended; please log in again.').waitFor({ timeout: 35_000 });
    await devices.nth(1).waitFor({ state: 'detached', timeout: SOON });

    laptop.page.once('dialog', (d) => void d.accept());
    await laptop.page.getByLabel('Password to confirm').fill('a new horse battery');
    await laptop.page.getByRole('button', { name: 'Delete account', exact: true }).click();
    await laptop.page.getByText('Your account was deleted.').waitFor({ timeout: SOON });
    const again = await supertest(url).post('/api/login').send({ name, password: 'a new horse battery' });
    expect(again.status).to.equal(401);
  });
});
