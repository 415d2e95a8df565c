import { expect } from 'chai';
import supertest from 'supertest';
import { as, pollEvents, register, type TestUser } from '../support/client.js';
import { requireServices } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

describe('bad input gets a clear 4xx JSON error and the server keeps serving', function () {
  this.timeout(60_000);
  let stack: Stack;
  let url: string;
  let alice: TestUser;
  let bob: TestUser;
  let mallory: TestUser;
  let conv: { id: string };
  before(async function () {
    await requireServices(this);
    stack = await startStack({ backend: 'real' });
    url = stack.nodes[0]!.url;
    alice = await register(url, 'alice');
    bob = await register(url, 'bob');
    mallory = await register(url, 'mallory');
    conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name })).body.conversation;
  });
  afterEach(async () => {
    await supertest(url).get('/healthz').expect(200);
  });
  after(async () => stack?.close());

  function expectError(res: supertest.Response, status: number, code?: string) {
    expect(res.status, JSON.stringify(res.body)).to.equal(status);
    expect(res.headers['content-type']).to.match(/application\/json/);
    expect(res.body.error.message).to.be.a('string').and.not.empty;
    if (code) expect(res.body.error.code).to.equal(code);
  }

  it('malformed JSON → 400 bad_json', async () => {
    const res = await supertest(url).post('/api/register').set('Content-Type', 'application/json').send('{"name": "x",');
    expectError(res, 400, 'bad_json');
  });

  it('an oversized body → 413, and a message text over the limit → 413', async () => {
    const huge = 'x'.repeat(200_000);
    expectError(await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: huge }), 413, 'too_large');
    const long = 'y'.repeat(16_001);
    expectError(await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: long }), 413, 'too_large');
  });

  it('missing or wrong fields → 400 naming the problem', async () => {
    expectError(await supertest(url).post('/api/register').send({ name: 'nopass' }), 400, 'bad_password');
    expectError(await supertest(url).post('/api/register').send({ password: 'long enough pw' }), 400, 'bad_name');
    expectError(await supertest(url).post('/api/register').send({ name: 'Bad Name!', password: 'long enough pw' }), 400, 'bad_name');
    expectError(await supertest(url).post('/api/register').send({ name: 'shortpw', password: 'short' }), 400, 'bad_password');
    expectError(await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({}), 400, 'bad_text');
    expectError(await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 42 }), 400, 'bad_text');
    expectError(await as(url, alice).post('/api/conversations').send({}), 400, 'bad_conversation');
    expectError(await as(url, alice).post('/api/conversations').send({ with: alice.name }), 400, 'self_conversation');
    expectError(await as(url, alice).post(`/api/conversations/${conv.id}/read`).send({ up_to: 'soon' }), 400, 'bad_up_to');
    expectError(await as(url, alice).get(`/api/conversations/${conv.id}/messages?limit=-3`), 400, 'bad_limit');
    expectError(await as(url, alice).get('/api/events?wait=forever'), 400, 'bad_wait');
  });

  it('a malformed or future cursor → 400 bad_cursor; polling without since then works', async () => {
    expectError(await as(url, bob).get('/api/events?since=garbage&wait=0'), 400, 'bad_cursor');
    expectError(await as(url, bob).get('/api/events?since=1-zzzzzzz&wait=0'), 400, 'bad_cursor');
    const fresh = await as(url, bob).get('/api/events?wait=0').expect(200);
    expect(fresh.body.cursor).to.be.a('string');
  });

  it('an unknown conversation → 404; a non-member reading or sending → 403', async () => {
    expectError(await as(url, alice).get('/api/conversations/nope/messages'), 404, 'not_found');
    expectError(await as(url, alice).post('/api/conversations/nope/messages').send({ text: 'hi' }), 404, 'not_found');
    expectError(await as(url, mallory).get(`/api/conversations/${conv.id}/messages`), 403, 'forbidden');
    expectError(await as(url, mallory).post(`/api/conversations/${conv.id}/messages`).send({ text: 'let me in' }), 403, 'forbidden');
    expectError(await as(url, mallory).post(`/api/conversations/${conv.id}/read`).send({ up_to: 1 }), 403, 'forbidden');
    expectError(await as(url, mallory).post(`/api/conversations/${conv.id}/members`).send({ name: 'mallory' }), 403);
    expectError(await as(url, alice).post('/api/conversations').send({ with: 'nobody-by-that-name' }), 404, 'not_found');
  });

  it('a missing or bad token → 401; a logged-out token stops working', async () => {
    expectError(await supertest(url).get('/api/conversations'), 401, 'unauthorized');
    expectError(await supertest(url).get('/api/conversations').set('Authorization', 'Bearer not-a-real-token-at-all-xxxx'), 401);
    expectError(await supertest(url).get('/api/conversations').set('Authorization', 'Basic abc'), 401);
    const login = await supertest(url).post('/api/login').send({ name: alice.name, password: 'correct horse battery' }).expect(200);
    const device = { name: alice.name, token: login.body.token as string };
    await as(url, device).get('/api/conversations').expect(200);
    await as(url, device).post('/api/logout').expect(204);
    expectError(await as(url, device).get('/api/conversations'), 401);
    await as(url, alice).get('/api/conversations').expect(200); // the other device still works
  });

  it('an unknown path → 404 JSON', async () => {
    expectError(await supertest(url).get('/api/nothing-here'), 404, 'not_found');
  });

  it("nobody reads another user's stream: events are per token", async () => {
    await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'private' }).expect(201);
    const events = await pollEvents(url, mallory);
    expect(JSON.stringify(events)).not.to.contain('private');
  });
});

describe('clients behind proxies: form bodies, POST polls, access_token and JSONP', function () {
  this.timeout(30_000);
  let stack: Stack;
  let url: string;
  before(async () => {
    stack = await startStack({ backend: 'embedded' });
    url = stack.nodes[0]!.url;
  });
  after(async () => stack?.close());

  it('sends with a form and polls with POST /api/events and access_token', async () => {
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const conv = (await supertest(url).post('/api/conversations').type('form').send({ with: bob.name, access_token: alice.token }).expect(201))
      .body.conversation;
    await supertest(url)
      .post(`/api/conversations/${conv.id}/messages`)
      .type('form')
      .send({ text: 'from a form', client_id: 'f1', access_token: alice.token })
      .expect(201);
    const res = await supertest(url).post('/api/events').type('form').send({ wait: '0', access_token: bob.token }).expect(200);
    expect(res.headers['cache-control']).to.equal('no-store');
    expect(res.body.events.map((e: any) => e.message?.text)).to.include('from a form');
  });

  it('answers JSONP with callback and access_token; a bad callback name is plain JSON', async () => {
    const bob = await register(url, 'bob');
    const res = await supertest(url).get(`/api/events?wait=0&callback=parley.cb1&access_token=${bob.token}`).expect(200);
    expect(res.headers['content-type']).to.match(/application\/javascript/);
    expect(res.text).to.match(/^\/\*\*\/parley\.cb1\(\{"cursor":"[^"]+","events":\[.*\]\}\);$/);
    const bad = await supertest(url).get(`/api/events?wait=0&callback=alert(1)&access_token=${bob.token}`).expect(200);
    expect(bad.headers['content-type']).to.match(/application\/json/);
    const unauth = await supertest(url).get('/api/events?wait=0&callback=cb').expect(200);
    expect(unauth.text).to.match(/^\/\*\*\/cb\(\{"error":\{"code":"unauthorized"/);
  });

  it('rate limits answer 429 with Retry-After', async () => {
    const limited = await startStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', LOGIN_ATTEMPTS: '2' } });
    try {
      const u = limited.nodes[0]!.url;
      const carol = await register(u, 'carol');
      for (let i = 0; i < 2; i++) await supertest(u).post('/api/login').send({ name: carol.name, password: 'wrong password' }).expect(401);
      const res = await supertest(u).post('/api/login').send({ name: carol.name, password: 'correct horse battery' });
      expect(res.status).to.equal(429);
      expect(Number(res.headers['retry-after'])).to.be.above(0);
      expect(res.body.error.code).to.equal('rate_limited');
    } finally {
      await limited.close();
    }
  });

  it('a user opens at most CONVERSATIONS_PER_HOUR conversations (direct or group) an hour (issue 11 item 7: groups were unlimited)', async () => {
    const limited = await startStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', CONVERSATIONS_PER_HOUR: '3' } });
    try {
      const u = limited.nodes[0]!.url;
      const alice = await register(u, 'alice');
      const others = await Promise.all([1, 2, 3].map(() => register(u, 'peer')));
      const statuses: number[] = [];
      for (const o of others) statuses.push((await as(u, alice).post('/api/conversations').send({ with: o.name })).status);
      statuses.push((await as(u, alice).post('/api/conversations').send({ title: 'spam', members: [others[0]!.name] })).status);
      expect(statuses).to.deep.equal([201, 201, 201, 429]);
      // someone else is not affected
      await as(u, others[0]!).post('/api/conversations').send({ title: 'team', members: [alice.name] }).expect(201);
    } finally {
      await limited.close();
    }
  });

  it('/metrics serves the documented metrics; with METRICS_TOKEN set, only to that bearer', async () => {
    await supertest(url).get('/healthz').expect(200); // at least one request counted
    const open = await supertest(url).get('/metrics').expect(200);
    for (const name of ['parley_parked_requests', 'parley_messages_sent_total', 'parley_wakeup_latency_seconds_bucket', 'parley_http_requests_total']) {
      expect(open.text, name).to.contain(name);
    }
    const token = 'metrics-secret-0123456789';
    const guarded = await startStack({ backend: 'embedded', env: { METRICS_TOKEN: token } });
    try {
      const u = guarded.nodes[0]!.url;
      const refused = await supertest(u).get('/metrics').expect(401);
      expect(refused.body.error.code).to.equal('unauthorized');
      await supertest(u).get('/metrics').set('Authorization', 'Bearer wrong-token-0123456789').expect(401);
      const ok = await supertest(u).get('/metrics').set('Authorization', `Bearer ${token}`).expect(200);
      expect(ok.text).to.contain('parley_parked_requests');
    } finally {
      await guarded.close();
    }
  });

  it('/metrics is refused without METRICS_TOKEN in production (NODE_ENV=production or DYNO set)', async function () {
    // on a dyno a node needs DATABASE_URL (it refuses to start on its own disk): the real services
    await requireServices(this);
    const cases = [
      { backend: 'embedded', env: { NODE_ENV: 'production' } },
      { backend: 'real', env: { DYNO: 'web.1', DATABASE_SSL: 'off' } },
    ] as const;
    for (const { backend, env } of cases) {
      const prod = await startStack({ backend, env });
      try {
        const refused = await supertest(prod.nodes[0]!.url).get('/metrics').expect(403);
        expect(refused.body.error.code).to.equal('forbidden');
        expect(refused.text).to.not.contain('parley_');
      } finally {
        await prod.close();
      }
    }
  });

  it('per-address limits use the address the proxy saw, not one the client wrote into X-Forwarded-For', async () => {
    const limited = await startStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', REGISTRATIONS_PER_HOUR: '2', TRUST_PROXY: '1' } });
    try {
      const u = limited.nodes[0]!.url;
      // Behind one proxy (TRUST_PROXY=1, as on Heroku): the right-most entry is the proxy's record
      // of the client; what is left of it the client sent, and changes every time here
      const from = (i: number) => ({ 'X-Forwarded-For': `10.0.0.${i}, 203.0.113.7` });
      const statuses: number[] = [];
      for (let i = 1; i <= 3; i++) {
        statuses.push((await supertest(u).post('/api/register').set(from(i)).send({ name: `spoof${Date.now()}${i}`, password: 'correct horse battery' })).status);
      }
      expect(statuses).to.deep.equal([201, 201, 429]);
      // another real client address is not affected
      await supertest(u).post('/api/register').set({ 'X-Forwarded-For': '203.0.113.8' }).send({ name: `other${Date.now()}`, password: 'correct horse battery' }).expect(201);
    } finally {
      await limited.close();
    }
  });

  it('with nothing in front (TRUST_PROXY unset, not on Heroku) a spoofed X-Forwarded-For does not buy a fresh address (issue 11 item 3)', async () => {
    const limited = await startStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', REGISTRATIONS_PER_HOUR: '2' } });
    try {
      const u = limited.nodes[0]!.url;
      const statuses: number[] = [];
      for (let i = 1; i <= 3; i++) {
        const res = await supertest(u).post('/api/register').set({ 'X-Forwarded-For': `198.51.100.${i}` }).send({ name: `direct${Date.now()}${i}`, password: 'correct horse battery' });
        statuses.push(res.status);
      }
      expect(statuses).to.deep.equal([201, 201, 429]);
    } finally {
      await limited.close();
    }
  });
});
