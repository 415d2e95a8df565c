import { expect } from 'chai';
import { as, register } from '../../support/client.js';
import { requireServices } from '../../support/services.js';
import { startStack, type Stack } from '../../support/stack.js';
import { transparentPng } from '../../media/images.js';
import { conditionOf, connect, disconnectAll, first, inbox, iq, loadStrophe, roundRobin, type Strophe } from './strophe-support.js';

const DOMAIN = 'localhost';
const UPLOAD = 'urn:xmpp:http:upload:0';
const LIMIT = 400_000;

/* eslint-disable @typescript-eslint/no-explicit-any */

describe('XEP-0363 HTTP upload over BOSH (Strophe.js, two nodes) onto Parley files', function () {
  this.timeout(60_000);
  let stack: Stack;
  let lb: Awaited<ReturnType<typeof roundRobin>>;
  let S: Strophe;
  let conns: any[] = [];
  const url = (i: number) => stack.nodes[i]!.url;

  before(async function () {
    await requireServices(this);
    S = await loadStrophe();
    stack = await startStack({ backend: 'real', nodes: 2, env: { UPLOAD_LIMIT: String(LIMIT) } });
    lb = await roundRobin(stack.nodes.map((n) => n.url));
  });
  afterEach(async () => {
    await disconnectAll(S, conns);
    conns = [];
  });
  after(async () => {
    await lb?.close();
    await stack?.close();
  });

  const slot = (conn: any, filename: string, size: number) =>
    iq(conn, S.$iq({ type: 'get', to: `upload.${DOMAIN}` }).c('request', { xmlns: UPLOAD, filename, size: String(size), 'content-type': 'image/png' }));

  it('slot, PUT, the GET URL sent as a message: the file is an attachment members download (with thumbnails), nobody else', async () => {
    const alice = await register(url(0), 'alice');
    const bob = await register(url(0), 'bob');
    const carol = await register(url(0), 'carol');
    const conv = (await as(url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    const a = await connect(S, lb.url, alice, DOMAIN);
    const b = await connect(S, lb.url, bob, DOMAIN);
    conns.push(a, b);
    const bMsgs = inbox(S, b, 'message');
    b.send(S.$pres());
    await iq(b, S.$iq({ type: 'get' }).c('ping', { xmlns: 'urn:xmpp:ping' }));

    const png = await transparentPng(640, 480);
    expect(png.length).to.be.below(LIMIT);
    const ans = await slot(a, 'pic.png', png.length);
    expect(ans.getAttribute('type')).to.equal('result');
    const put = first(ans, 'put').getAttribute('url') as string;
    const get = first(ans, 'get').getAttribute('url') as string;
    expect(put.startsWith(`${lb.url}/upload/`)).to.equal(true);
    const fileId = /\/api\/files\/(f[\w-]+)$/.exec(get)?.[1];
    expect(get).to.equal(`${lb.url}/api/files/${fileId}`);

    // A PUT of another length is refused; the right one is stored (on either node); a second PUT is a conflict
    expect((await fetch(put, { method: 'PUT', body: new Uint8Array(png.subarray(0, 100)) })).status).to.equal(400);
    const ok = await fetch(put, { method: 'PUT', body: new Uint8Array(png), headers: { 'Content-Type': 'image/png', Origin: 'https://elsewhere.example' } });
    expect(ok.status).to.equal(201);
    expect(ok.headers.get('access-control-allow-origin')).to.equal('*');
    expect((await fetch(put, { method: 'PUT', body: new Uint8Array(png) })).status).to.equal(409);
    expect((await fetch(put.replace(/\/upload\/([^/]+)\/[^/]+\//, '/upload/$1/wrongsecret/'), { method: 'PUT', body: new Uint8Array(png) })).status).to.equal(404);
    // Not sent anywhere yet: nobody downloads it, the uploader neither
    await as(url(1), alice).get(`/api/files/${fileId}`).expect(404);

    // Converse sends the GET URL as the message (with OOB)
    a.send(S.$msg({ to: `${bob.name}@${DOMAIN}`, type: 'chat', id: 'up-1' }).c('body').t(get).up().c('x', { xmlns: 'jabber:x:oob' }).c('url').t(get));
    const m = await bMsgs.next((st) => first(st, 'body')?.textContent === get, 'bob gets the upload message');
    expect(first(m, 'url').textContent).to.equal(`/api/files/${fileId}`);

    const history = (await as(url(1), bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
    const att = history[history.length - 1].attachment;
    expect(att).to.include({ id: fileId, name: 'pic.png', type: 'image/png', size: png.length, width: 640, height: 480 });
    expect(att.thumbnail_url).to.equal(`/api/files/${fileId}/thumbnail`);
    const got = await as(url(1), bob).get(`/api/files/${fileId}`).buffer(true).parse((res, cb) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => cb(null, Buffer.concat(chunks)));
    }).expect(200);
    expect(Buffer.compare(got.body as Buffer, png)).to.equal(0);
    await as(url(0), bob).get(`/api/files/${fileId}/thumbnail`).expect(200);
    await as(url(0), alice).get(`/api/files/${fileId}`).expect(200);
    await as(url(0), carol).get(`/api/files/${fileId}`).expect(404);
    expect((await fetch(get.replace(lb.url, url(0)))).status).to.equal(401); // no token, no grant: members only
    await as(url(0), carol).get(`/api/files/${fileId}/thumbnail`).expect(404);

    // Sending the same URL again is a plain text message: one attachment
    a.send(S.$msg({ to: `${bob.name}@${DOMAIN}`, type: 'chat', id: 'up-2' }).c('body').t(get));
    await bMsgs.next((st) => first(st, 'body')?.textContent === get, 'bob gets the second message');
    const again = (await as(url(1), bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
    expect(again[again.length - 1].attachment).to.equal(undefined);
  });

  it('refuses a slot over UPLOAD_LIMIT with file-too-large and the limit; a bad request is bad-request; the URL of another user\'s upload is text', async () => {
    const alice = await register(url(0), 'alice');
    const bob = await register(url(0), 'bob');
    const conv = (await as(url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    const a = await connect(S, lb.url, alice, DOMAIN);
    const b = await connect(S, lb.url, bob, DOMAIN);
    conns.push(a, b);
    const big = await slot(a, 'big.bin', LIMIT + 1);
    expect(conditionOf(big)).to.equal('not-acceptable');
    expect(first(first(big, 'file-too-large'), 'max-file-size').textContent).to.equal(String(LIMIT));
    expect(conditionOf(await slot(a, 'zero.bin', 0))).to.equal('bad-request');
    expect(conditionOf(await iq(a, S.$iq({ type: 'get', to: `upload.${DOMAIN}` }).c('request', { xmlns: UPLOAD, size: '10' })))).to.equal('bad-request');

    // alice's slot, PUT; bob sends its GET URL: text, not the file
    const ans = await slot(a, 'note.txt', 5);
    const put = first(ans, 'put').getAttribute('url') as string;
    const get = first(ans, 'get').getAttribute('url') as string;
    expect((await fetch(put, { method: 'PUT', body: 'hello' })).status).to.equal(201);
    const bSent = inbox(S, a, 'message');
    a.send(S.$pres());
    await iq(a, S.$iq({ type: 'get' }).c('ping', { xmlns: 'urn:xmpp:ping' }));
    b.send(S.$msg({ to: `${alice.name}@${DOMAIN}`, type: 'chat' }).c('body').t(get));
    const m = await bSent.next((st) => first(st, 'body')?.textContent === get, 'alice gets bob\'s text');
    expect(first(m, 'x')).to.equal(undefined);
    const last = (await as(url(0), alice).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages.at(-1);
    expect(last).to.include({ text: get, from: bob.name });
    expect(last.attachment).to.equal(undefined);
  });
});
