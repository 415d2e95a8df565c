import { expect } from 'chai';
import supertest from 'supertest';
import { as, PASSWORD, register, type TestUser } from '../support/client.js';
import { requireServices } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

// PostgreSQL refuses U+0000 in text ("invalid byte sequence for encoding UTF8: 0x00", 22021): a
// NUL in a client_id or a login name used to come back as `500 internal` from the store.
const NUL = '\u0000';
const LONE = '\ud800';

describe('text PostgreSQL cannot store (U+0000, lone surrogates) is a 400 at the edge, not a 500', function () {
  this.timeout(60_000);
  let stack: Stack;
  let url: string;
  let alice: TestUser;
  let bob: TestUser;
  let conv: { id: string };
  before(async function () {
    await requireServices(this);
    stack = await startStack({ backend: 'real' });
    url = stack.nodes[0]!.url;
    alice = await register(url, 'alice');
    bob = await register(url, 'bob');
    conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name })).body.conversation;
  });
  afterEach(async () => {
    await supertest(url).get('/healthz').expect(200);
  });
  after(async () => stack?.close());

  function expectBadText(res: supertest.Response) {
    expect(res.status, JSON.stringify(res.body)).to.equal(400);
    expect(res.headers['content-type']).to.match(/application\/json/);
    expect(res.body.error.code).to.equal('bad_text');
    expect(res.body.error.message).to.match(/U\+0000|surrogate/);
  }

  it('a NUL in a client_id (JSON and form), and the same send without it still works', async () => {
    expectBadText(await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'hi', client_id: `c${NUL}1` }));
    expectBadText(await as(url, alice).post(`/api/conversations/${conv.id}/messages`).type('form').send(`text=hi&client_id=c%001`));
    await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'hi', client_id: 'c1' }).expect(201);
  });

  it('a NUL in a login or registration name or password', async () => {
    expectBadText(await supertest(url).post('/api/login').send({ name: `${alice.name}${NUL}`, password: PASSWORD }));
    expectBadText(await supertest(url).post('/api/login').send({ name: alice.name, password: `${PASSWORD}${NUL}` }));
    expectBadText(await supertest(url).post('/api/register').send({ name: `n${NUL}x`, password: PASSWORD }));
  });

  it('a NUL or lone surrogate in a message text, a group title, member names or a direct partner', async () => {
    expectBadText(await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `a${NUL}b` }));
    expectBadText(await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `a${LONE}b` }));
    expectBadText(await as(url, alice).post('/api/conversations').send({ title: `t${NUL}`, members: [bob.name] }));
    expectBadText(await as(url, alice).post('/api/conversations').send({ title: 'ok', members: [`${bob.name}${NUL}`] }));
    expectBadText(await as(url, alice).post('/api/conversations').send({ with: `${bob.name}${NUL}` }));
    expectBadText(await as(url, alice).post(`/api/conversations/${conv.id}/members`).send({ name: `x${NUL}` }));
  });

  it('a NUL in a path segment or query parameter (conversation id, member name, cursor, before)', async () => {
    expectBadText(await as(url, alice).get(`/api/conversations/${conv.id}%00/messages`));
    expectBadText(await as(url, alice).post(`/api/conversations/${conv.id}%00/messages`).send({ text: 'hi' }));
    expectBadText(await as(url, alice).delete(`/api/conversations/${conv.id}/members/x%00y`));
    expectBadText(await as(url, alice).get('/api/events?since=1%00&wait=0'));
    expectBadText(await as(url, alice).get(`/api/conversations/${conv.id}/messages?before=m%00`));
  });

  it('a NUL in the text or client_id field of a file upload', async () => {
    const res = await as(url, alice)
      .post(`/api/conversations/${conv.id}/files`)
      .field('client_id', `f${NUL}1`)
      .attach('file', Buffer.from('hello file'), 'hello.txt');
    expectBadText(res);
  });
});
