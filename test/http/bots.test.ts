import { expect } from 'chai';
import supertest from 'supertest';
import { as, pollEvents, register, type TestUser } from '../support/client.js';
import { loggedPath } from '../../server/http/errors.js';
import { requireServices } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

/** A bot token's user, for the `as` helper (its token in place of a person's). */
const botUser = (token: string): TestUser => ({ name: 'bot', token });

/**
 * Bot tokens and incoming webhooks: a bot acts for its owner in one conversation only, within its
 * scope; a webhook posts as its creator; the messages of both carry the bot's name.
 */
for (const backend of ['embedded', 'real'] as const) {
  describe(`bots and incoming webhooks (${backend})`, function () {
    this.timeout(60_000);
    let stack: Stack;
    let url: string;
    before(async function () {
      if (backend === 'real') await requireServices(this);
      stack = await startStack({ backend });
      url = stack.nodes[0]!.url;
    });
    after(async () => stack?.close());

    /** alice and bob in a direct conversation, alice and carol in another. */
    async function people() {
      const alice = await register(url, 'alice');
      const bob = await register(url, 'bob');
      const carol = await register(url, 'carol');
      const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation as { id: string };
      const other = (await as(url, alice).post('/api/conversations').send({ with: carol.name }).expect(201)).body.conversation as { id: string };
      await as(url, bob).post(`/api/conversations/${conv.id}/accept`).expect(204);
      return { alice, bob, carol, conv, other };
    }

    async function makeBot(owner: TestUser, conversation: string, scope: string, name = 'ci') {
      const res = await as(url, owner).post('/api/bots').send({ name, conversation, scope }).expect(201);
      return { bot: res.body.bot as { id: string; name: string; scope: string; conversation: string; created_at: string }, token: res.body.token as string };
    }

    it('the owner makes a bot token for a conversation, sees it listed without its token, and a send bot posts there with `bot` shown to everyone', async () => {
      const { alice, bob, conv } = await people();
      const { bot, token } = await makeBot(alice, conv.id, 'send', 'deploys');
      expect(bot).to.include({ name: 'deploys', conversation: conv.id, scope: 'send' });
      expect(Date.parse(bot.created_at)).to.be.a('number').and.not.NaN;
      const listed = (await as(url, alice).get('/api/bots').expect(200)).body.bots;
      expect(listed).to.deep.equal([bot]);
      expect(JSON.stringify(listed)).to.not.include(token.slice(5));

      const sent = await as(url, botUser(token)).post(`/api/conversations/${conv.id}/messages`).send({ text: 'build green', client_id: 'b1' }).expect(201);
      expect(sent.body.message).to.include({ from: alice.name, text: 'build green', bot: 'deploys' });
      // The same client_id again is the same message, as for any send
      const again = await as(url, botUser(token)).post(`/api/conversations/${conv.id}/messages`).send({ text: 'build green', client_id: 'b1' }).expect(200);
      expect(again.body.message).to.include({ id: sent.body.message.id, bot: 'deploys' });

      const history = (await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
      expect(history.map((m: any) => [m.from, m.text, m.bot])).to.deep.equal([[alice.name, 'build green', 'deploys']]);
      const events = await pollEvents(url, bob);
      expect(events.filter((e) => e.type === 'message').map((e) => e.message.bot)).to.deep.equal(['deploys']);
      // A message alice writes herself carries no bot
      await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'by hand' }).expect(201);
      const mine = (await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
      expect(mine[1]).to.include({ text: 'by hand' }).and.not.have.property('bot');
    });

    it('a bot token works in a form body as access_token and in the query, as a person token does', async () => {
      const { alice, conv } = await people();
      const { token } = await makeBot(alice, conv.id, 'read,send');
      await supertest(url).post(`/api/conversations/${conv.id}/messages`).type('form').send({ access_token: token, text: 'from a form' }).expect(201);
      const page = await supertest(url).get(`/api/conversations/${conv.id}/messages?access_token=${encodeURIComponent(token)}`).expect(200);
      expect(page.body.messages.map((m: any) => m.text)).to.deep.equal(['from a form']);
    });

    it('a send-only bot cannot read: history and events answer 403 out_of_scope', async () => {
      const { alice, conv } = await people();
      const { token } = await makeBot(alice, conv.id, 'send');
      const history = await as(url, botUser(token)).get(`/api/conversations/${conv.id}/messages`).expect(403);
      expect(history.body.error.code).to.equal('out_of_scope');
      expect((await as(url, botUser(token)).get('/api/events?wait=0').expect(403)).body.error.code).to.equal('out_of_scope');
      expect((await as(url, botUser(token)).post('/api/events').send({ wait: 0 }).expect(403)).body.error.code).to.equal('out_of_scope');
    });

    it('a read bot cannot send; it reads history, and its events are only its conversation\'s', async () => {
      const { alice, bob, carol, conv, other } = await people();
      const { token } = await makeBot(alice, conv.id, 'read', 'reader');
      const refused = await as(url, botUser(token)).post(`/api/conversations/${conv.id}/messages`).send({ text: 'no' }).expect(403);
      expect(refused.body.error.code).to.equal('out_of_scope');
      await as(url, bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'for the bot' }).expect(201);
      await as(url, carol).post(`/api/conversations/${other.id}/messages`).send({ text: 'not for the bot' }).expect(201);
      const history = (await as(url, botUser(token)).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
      expect(history.map((m: any) => m.text)).to.deep.equal(['for the bot']);

      const res = await as(url, botUser(token)).get('/api/events?wait=0').expect(200);
      const events = res.body.events as Array<Record<string, any>>;
      expect(events.map((e) => e.message?.text).filter(Boolean)).to.deep.equal(['for the bot']);
      for (const e of events) {
        const about = e.message?.conversation ?? (typeof e.conversation === 'string' ? e.conversation : e.conversation?.id);
        expect(about, JSON.stringify(e)).to.equal(conv.id);
      }
      // alice's own stream still has both
      const hers = await pollEvents(url, alice);
      expect(hers.map((e) => e.message?.text).filter(Boolean)).to.have.members(['for the bot', 'not for the bot']);
    });

    it("a read bot parked on events sleeps through its owner's other conversations and wakes for its own", async () => {
      const { alice, bob, carol, conv, other } = await people();
      const { token } = await makeBot(alice, conv.id, 'read');
      const first = await as(url, botUser(token)).get('/api/events?wait=0').expect(200);
      const lot = stack.nodes[0]!.deps.lot;
      const started = Date.now();
      const answer = as(url, botUser(token)).get(`/api/events?since=${first.body.cursor}&wait=10`).then((r) => r);
      while (lot.parked === 0) await new Promise((r) => setTimeout(r, 10)); // parked
      await as(url, carol).post(`/api/conversations/${other.id}/messages`).send({ text: 'elsewhere' }).expect(201);
      await as(url, bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'wake up' }).expect(201);
      const res = await answer;
      expect(res.status).to.equal(200);
      expect(Date.now() - started).to.be.below(8000); // woken, not timed out
      const texts = res.body.events.map((e: any) => e.message?.text);
      expect(texts).to.include('wake up');
      expect(texts).to.not.include('elsewhere');
    });

    it("what a bot reads is not delivered to its owner: bob's message stays `sent` until alice's own device polls", async () => {
      const { alice, bob, conv } = await people();
      await pollEvents(url, alice);
      const { token } = await makeBot(alice, conv.id, 'read');
      const sent = (await as(url, bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'for alice' }).expect(201)).body.message;
      const read = await as(url, botUser(token)).get('/api/events?wait=0').expect(200);
      expect(read.body.events.map((e: any) => e.message?.text)).to.include('for alice');
      await as(url, botUser(token)).get(`/api/events?since=${read.body.cursor}&wait=0`).expect(200); // would acknowledge, were it a device
      const status = async () =>
        ((await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages as any[]).find((m) => m.id === sent.id).status;
      expect(await status()).to.equal('sent');
      await pollEvents(url, alice);
      await pollEvents(url, alice); // acknowledges
      expect(await status()).to.equal('delivered');
    });

    it('no bot touches another conversation, nor account, bot or list routes: 403 out_of_scope', async () => {
      const { alice, conv, other } = await people();
      const { bot, token } = await makeBot(alice, conv.id, 'read,send');
      const b = as(url, botUser(token));
      const refusals = [
        b.post(`/api/conversations/${other.id}/messages`).send({ text: 'elsewhere' }),
        b.get(`/api/conversations/${other.id}/messages`),
        b.post(`/api/conversations/${conv.id}/read`).send({ up_to: 1 }),
        b.post(`/api/conversations/${conv.id}/typing`),
        b.post(`/api/conversations/${conv.id}/members`).send({ name: 'x' }),
        b.post(`/api/conversations/${conv.id}/webhooks`).send({ name: 'x' }),
        b.post(`/api/conversations/${conv.id}/files`).attach('file', Buffer.from('hello'), 'a.txt'),
        b.get('/api/conversations'),
        b.post('/api/conversations').send({ with: 'someone' }),
        b.get('/api/me'),
        b.get('/api/contacts'),
        b.post('/api/logout'),
        b.get('/api/bots'),
        b.post('/api/bots').send({ name: 'child', conversation: conv.id, scope: 'send' }),
        b.delete(`/api/bots/${bot.id}`),
      ];
      for (const [i, req] of refusals.entries()) {
        const res = await req;
        expect([res.status, res.body.error?.code], `refusal #${i}`).to.deep.equal([403, 'out_of_scope']);
      }
      // Still alive after all that (logout and delete were refused)
      await b.get(`/api/conversations/${conv.id}/messages`).expect(200);
    });

    it('a revoked bot token answers 401 at once; only its owner revokes it', async () => {
      const { alice, bob, conv } = await people();
      const { bot, token } = await makeBot(alice, conv.id, 'send');
      await as(url, botUser(token)).post(`/api/conversations/${conv.id}/messages`).send({ text: 'one' }).expect(201);
      await as(url, bob).delete(`/api/bots/${bot.id}`).expect(404);
      await as(url, alice).delete(`/api/bots/${bot.id}`).expect(204);
      await as(url, botUser(token)).post(`/api/conversations/${conv.id}/messages`).send({ text: 'two' }).expect(401);
      await as(url, alice).delete(`/api/bots/${bot.id}`).expect(404);
      expect((await as(url, alice).get('/api/bots').expect(200)).body.bots).to.deep.equal([]);
    });

    it('a bot stops working when its owner leaves the conversation', async () => {
      const owner = await register(url, 'own');
      const alice = await register(url, 'alice');
      const group = (await as(url, owner).post('/api/conversations').send({ title: 'ops', members: [alice.name] }).expect(201)).body.conversation;
      await as(url, alice).post(`/api/conversations/${group.id}/accept`).expect(204);
      const { token } = await makeBot(alice, group.id, 'read,send');
      await as(url, botUser(token)).post(`/api/conversations/${group.id}/messages`).send({ text: 'while a member' }).expect(201);
      await as(url, owner).delete(`/api/conversations/${group.id}/members/${alice.name}`).expect(204);
      await as(url, botUser(token)).post(`/api/conversations/${group.id}/messages`).send({ text: 'after' }).expect(403);
      await as(url, botUser(token)).get(`/api/conversations/${group.id}/messages`).expect(403);
      await as(url, botUser(token)).get('/api/events?wait=0').expect(403);
      const texts = (await as(url, owner).get(`/api/conversations/${group.id}/messages`).expect(200)).body.messages.map((m: any) => m.text);
      expect(texts).to.deep.equal(['while a member']);
    });

    it('archived bot and webhook messages still show their names in history', async () => {
      const { alice, bob, conv } = await people();
      const { token } = await makeBot(alice, conv.id, 'send', 'builds');
      const hook = (await as(url, alice).post(`/api/conversations/${conv.id}/webhooks`).send({ name: 'alerts' }).expect(201)).body.webhook;
      await as(url, botUser(token)).post(`/api/conversations/${conv.id}/messages`).send({ text: 'one' }).expect(201);
      await supertest(url).post(hook.url).send({ text: 'two' }).expect(201);
      await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'three' }).expect(201);
      const last = (await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'last' }).expect(201)).body.message;
      await as(url, bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: last.seq }).expect(204); // read: archivable
      const report = await stack.nodes[0]!.deps.core.archive.run(new Date(Date.now() + 1000), 2);
      expect(report.messages).to.be.at.least(2);
      const history = (await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
      expect(history.map((m: any) => [m.text, m.bot ?? null])).to.deep.equal([
        ['one', 'builds'],
        ['two', 'alerts'],
        ['three', null],
        ['last', null],
      ]);
    });

    it('making a bot: only a member, a known conversation, a name and one of the three scopes', async () => {
      const { alice, carol, conv } = await people();
      const bad = async (user: TestUser, body: Record<string, unknown>, status: number, code: string) => {
        const res = await as(url, user).post('/api/bots').send(body).expect(status);
        expect(res.body.error.code, JSON.stringify(body)).to.equal(code);
      };
      await bad(carol, { name: 'x', conversation: conv.id, scope: 'send' }, 403, 'forbidden');
      await bad(alice, { name: 'x', conversation: 'c-nope', scope: 'send' }, 404, 'not_found');
      await bad(alice, { name: 'x', conversation: conv.id, scope: 'admin' }, 400, 'bad_scope');
      await bad(alice, { name: 'x', conversation: conv.id }, 400, 'bad_scope');
      await bad(alice, { name: '   ', conversation: conv.id, scope: 'send' }, 400, 'bad_name');
      await bad(alice, { name: 'x'.repeat(65), conversation: conv.id, scope: 'send' }, 400, 'bad_name');
      await bad(alice, { name: 'x', scope: 'send' }, 400, 'bad_conversation');
      await bad(alice, { name: ['x'], conversation: conv.id, scope: 'send' }, 400, 'bad_name');
      // A form body, and the two words in either order
      const res = await as(url, alice).post('/api/bots').type('form').send({ name: 'formed', conversation: conv.id, scope: 'send,read' }).expect(201);
      expect(res.body.bot.scope).to.equal('read,send');
      expect(res.body.token).to.match(/^pbot\./);
      await supertest(url).post('/api/bots').send({ name: 'x', conversation: conv.id, scope: 'send' }).expect(401);
      await as(url, botUser('pbot.not-a-real-token')).get(`/api/conversations/${conv.id}/messages`).expect(401);
    });

    describe('incoming webhooks', () => {
      async function makeHook(owner: TestUser, conversation: string, name = 'alerts') {
        const res = await as(url, owner).post(`/api/conversations/${conversation}/webhooks`).send({ name }).expect(201);
        return res.body.webhook as { id: string; name: string; url: string; created_at: string };
      }

      it('`curl -d text=hello <url>` posts as the creator with the webhook\'s name; the list never shows the URL again', async () => {
        const { alice, bob, conv } = await people();
        const hook = await makeHook(alice, conv.id);
        expect(hook.url).to.match(/^\/api\/hooks\/[A-Za-z0-9_-]{43}$/);
        const res = await supertest(url).post(hook.url).type('form').send('text=hello').expect(201);
        expect(res.body.message).to.include({ from: alice.name, text: 'hello', bot: 'alerts', conversation: conv.id });
        const events = await pollEvents(url, bob);
        expect(events.filter((e) => e.type === 'message').map((e) => [e.message.text, e.message.bot])).to.deep.equal([['hello', 'alerts']]);
        const listed = (await as(url, alice).get(`/api/conversations/${conv.id}/webhooks`).expect(200)).body.webhooks;
        expect(listed).to.deep.equal([{ id: hook.id, name: 'alerts', conversation: conv.id, created_at: hook.created_at }]);
        expect((await as(url, bob).get(`/api/conversations/${conv.id}/webhooks`).expect(200)).body.webhooks).to.deep.equal([]);
      });

      it('a JSON post with client_id is idempotent, as sends are', async () => {
        const { alice, conv } = await people();
        const hook = await makeHook(alice, conv.id);
        const first = await supertest(url).post(hook.url).send({ text: 'deploy 42', client_id: 'd42' }).expect(201);
        const again = await supertest(url).post(hook.url).send({ text: 'deploy 42', client_id: 'd42' }).expect(200);
        expect(again.body.message.id).to.equal(first.body.message.id);
        const history = (await as(url, alice).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
        expect(history.map((m: any) => [m.text, m.bot])).to.deep.equal([['deploy 42', 'alerts']]);
      });

      it('unknown, malformed and deleted secrets answer 404; bad text 4xx; only members make webhooks', async () => {
        const { alice, bob, carol, conv } = await people();
        const hook = await makeHook(alice, conv.id);
        await supertest(url).post(`/api/hooks/${'A'.repeat(43)}`).send({ text: 'x' }).expect(404);
        expect((await supertest(url).post('/api/hooks/short').send({ text: 'x' }).expect(404)).body.error.code).to.equal('not_found');
        expect((await supertest(url).post(hook.url).send({}).expect(400)).body.error.code).to.equal('bad_text');
        expect((await supertest(url).post(hook.url).send({ text: '   ' }).expect(400)).body.error.code).to.equal('bad_text');
        expect((await supertest(url).post(hook.url).send({ text: 5 }).expect(400)).body.error.code).to.equal('bad_text');
        expect((await supertest(url).post(hook.url).send({ text: 'x', client_id: 'c'.repeat(129) }).expect(400)).body.error.code).to.equal('bad_client_id');
        await supertest(url).post(hook.url).send({ text: 'x'.repeat(16_001) }).expect(413);
        await supertest(url).post(hook.url).set('Content-Type', 'application/json').send('{"text":').expect(400);
        expect((await as(url, carol).post(`/api/conversations/${conv.id}/webhooks`).send({ name: 'x' }).expect(403)).body.error.code).to.equal('forbidden');
        expect((await as(url, alice).post(`/api/conversations/${conv.id}/webhooks`).send({ name: '' }).expect(400)).body.error.code).to.equal('bad_name');
        await as(url, bob).delete(`/api/conversations/${conv.id}/webhooks/${hook.id}`).expect(404);
        await as(url, alice).delete(`/api/conversations/${conv.id}/webhooks/${hook.id}`).expect(204);
        await supertest(url).post(hook.url).send({ text: 'after delete' }).expect(404);
        expect((await as(url, alice).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages).to.deep.equal([]);
      });

      it("a webhook stops posting once its creator is no longer a member", async () => {
        const owner = await register(url, 'own');
        const alice = await register(url, 'alice');
        const group = (await as(url, owner).post('/api/conversations').send({ title: 'ops', members: [alice.name] }).expect(201)).body.conversation;
        const hook = await makeHook(alice, group.id);
        await supertest(url).post(hook.url).send({ text: 'in' }).expect(201);
        await as(url, owner).delete(`/api/conversations/${group.id}/members/${alice.name}`).expect(204);
        await supertest(url).post(hook.url).send({ text: 'out' }).expect(404);
      });
    });
  });
}

describe('bots and webhooks under the rate limits', function () {
  this.timeout(60_000);
  let stack: Stack;
  let url: string;
  before(async () => {
    stack = await startStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', REQUESTS_PER_MINUTE: '6', REGISTRATIONS_PER_HOUR: '1000' } });
    url = stack.nodes[0]!.url;
  });
  after(async () => stack?.close());

  it('webhook posts count against their creator as sends do: past the limit 429 with Retry-After', async () => {
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    const hook = (await as(url, alice).post(`/api/conversations/${conv.id}/webhooks`).send({ name: 'flood' }).expect(201)).body.webhook;
    const statuses: number[] = [];
    let limited: supertest.Response | undefined;
    for (let i = 0; i < 8 && !limited; i++) {
      const res = await supertest(url).post(hook.url).send({ text: `n${i}` });
      statuses.push(res.status);
      if (res.status === 429) limited = res;
    }
    expect(statuses.slice(0, -1).every((s) => s === 201), String(statuses)).to.equal(true);
    expect(limited, String(statuses)).to.not.equal(undefined);
    expect(limited!.body.error.code).to.equal('rate_limited');
    expect(Number(limited!.headers['retry-after'])).to.be.above(0);
    // alice's own requests share the budget
    await as(url, alice).get('/api/me').expect(429);
  });

  it('a bot token counts against its owner', async () => {
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    const { token } = (await as(url, alice).post('/api/bots').send({ name: 'b', conversation: conv.id, scope: 'send' }).expect(201)).body;
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      statuses.push((await as(url, botUser(token)).post(`/api/conversations/${conv.id}/messages`).send({ text: `n${i}` })).status);
    }
    expect(statuses).to.include(429);
    expect(statuses.indexOf(429)).to.be.above(0);
  });
});

describe('webhook secrets in logs', () => {
  it('an error log shows the webhook route, not its secret', () => {
    expect(loggedPath('/api/hooks/abcDEF123_-x')).to.equal('/api/hooks/:secret');
    expect(loggedPath('/api/conversations/c1/messages')).to.equal('/api/conversations/c1/messages');
  });
});
