import { expect } from 'chai';
import supertest from 'supertest';
import { PASSWORD, accept, as, pollEvents, register, waitForEvent, type TestUser } from '../support/client.js';
import { requireServices, unique } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

for (const backend of ['embedded', 'real'] as const) {
  describe(`the API flow of docs/api.md (${backend})`, function () {
    this.timeout(60_000);
    let stack: Stack;
    let url: string;
    before(async function () {
      if (backend === 'real') await requireServices(this);
      stack = await startStack({ backend });
      url = stack.nodes[0]!.url;
    });
    after(async () => stack?.close());

    it('registers with JSON and with a form, logs in, and rejects a taken name', async () => {
      const name = unique('form');
      const form = await supertest(url).post('/api/register').type('form').send(`name=${name.toUpperCase()}&password=${encodeURIComponent(PASSWORD)}`);
      expect(form.status).to.equal(201);
      expect(form.body.user).to.deep.equal({ name });
      expect(form.body.token).to.be.a('string');
      await supertest(url).post('/api/register').send({ name, password: PASSWORD }).expect(409);
      const login = await supertest(url).post('/api/login').send({ name, password: PASSWORD }).expect(200);
      expect(login.body.user.name).to.equal(name);
      const bad = await supertest(url).post('/api/login').send({ name, password: 'wrong password' }).expect(401);
      expect(bad.body.error.code).to.equal('bad_credentials');
    });

    it('alice and bob chat: direct conversation, send, poll, delivered and read receipts', async () => {
      const alice = await register(url, 'alice');
      const bob = await register(url, 'bob');
      const a = as(url, alice);
      const created = await a.post('/api/conversations').send({ with: bob.name }).expect(201);
      const conv = created.body.conversation;
      expect(conv.kind).to.equal('direct');
      expect(conv.members).to.have.members([alice.name, bob.name]);
      const again = await a.post('/api/conversations').send({ with: bob.name }).expect(200);
      expect(again.body.conversation.id).to.equal(conv.id);
      await accept(url, bob, conv.id); // bob consents: alice will see when he reads

      await pollEvents(url, alice); // alice's cursor
      const sent = await a.post(`/api/conversations/${conv.id}/messages`).send({ text: 'hi bob', client_id: 'c1' }).expect(201);
      expect(sent.body.message).to.include({ text: 'hi bob', from: alice.name, status: 'sent', client_id: 'c1' });

      const events = await pollEvents(url, bob);
      const msg = events.find((e) => e.type === 'message');
      expect(msg?.message.text).to.equal('hi bob');
      expect(msg?.message.from).to.equal(alice.name);
      await pollEvents(url, bob); // acknowledges → delivered

      const delivered = await waitForEvent(url, alice, (e) => e.type === 'receipt' && e.status === 'delivered');
      expect(delivered).to.include({ conversation: conv.id, user: bob.name, up_to: sent.body.message.seq });

      await as(url, bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: sent.body.message.seq }).expect(204);
      const read = await waitForEvent(url, alice, (e) => e.type === 'receipt' && e.status === 'read');
      expect(read).to.include({ user: bob.name, up_to: sent.body.message.seq });
      expect(read.at).to.equal(new Date(read.at).toISOString()); // ISO 8601, UTC, as everywhere in the API

      const history = await a.get(`/api/conversations/${conv.id}/messages`).expect(200);
      expect(history.body.messages.map((m: any) => [m.text, m.status])).to.deep.equal([['hi bob', 'read']]);
      const list = await as(url, bob).get('/api/conversations').expect(200);
      expect(list.body.conversations[0]).to.include({ id: conv.id, unread: 0 });
    });

    it('API answers are marked no-store, without an ETag, so no proxy or browser cache keeps one user\'s data', async () => {
      const alice = await register(url, 'alice');
      for (const path of ['/api/me', '/api/contacts', '/api/conversations', '/api/events?wait=0']) {
        const res = await as(url, alice).get(path).expect(200);
        expect(res.headers['cache-control'], path).to.equal('no-store');
        expect(res.headers['etag'], path).to.equal(undefined);
      }
      const error = await supertest(url).get('/api/contacts').expect(401);
      expect(error.headers['cache-control']).to.equal('no-store');
    });

    it('a duplicate client_id returns the same message, once', async () => {
      const alice = await register(url, 'alice');
      const bob = await register(url, 'bob');
      const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name })).body.conversation;
      const first = await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'once', client_id: 'k' }).expect(201);
      const second = await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'once', client_id: 'k' }).expect(200);
      expect(second.body.message.id).to.equal(first.body.message.id);
      const history = await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200);
      expect(history.body.messages).to.have.length(1);
    });
  });
}
