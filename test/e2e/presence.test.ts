import { expect } from 'chai';
import { as, pollEvents, register } from '../support/client.js';
import { requireServices } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

describe('presence from heartbeats, with two nodes sweeping', function () {
  this.timeout(60_000);
  let stack: Stack;
  let A: string;
  let B: string;
  before(async function () {
    await requireServices(this);
    // A 2 s window so that going offline takes seconds, not a minute.
    stack = await startStack({ backend: 'real', nodes: 2, env: { PRESENCE_TIMEOUT: '2' } });
    [A, B] = stack.nodes.map((n) => n.url) as [string, string];
  });
  after(async () => stack?.close());

  it('bob sees alice come online and go offline exactly once each, and her last_seen', async () => {
    const alice = await register(A, 'alice');
    const bob = await register(B, 'bob');
    await as(A, alice).post('/api/conversations').send({ with: bob.name }).expect(201);
    await pollEvents(B, bob);
    // alice is active on both nodes for a while: heartbeats from two nodes, one transition.
    for (let i = 0; i < 4; i++) {
      await as(i % 2 ? A : B, alice).post('/api/heartbeat').expect(204);
      await new Promise((r) => setTimeout(r, 250));
    }
    const contacts = await as(B, bob).get('/api/contacts').expect(200);
    expect(contacts.body.contacts).to.have.length(1);
    expect(contacts.body.contacts[0]).to.include({ name: alice.name, online: true });
    expect(Date.parse(contacts.body.contacts[0].last_seen)).to.be.closeTo(Date.now(), 5000);

    // Then alice goes quiet; both nodes sweep; bob keeps polling (which keeps bob online).
    const presence: Array<Record<string, any>> = [];
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline) {
      const events = await pollEvents(B, bob, 1);
      presence.push(...events.filter((e) => e.type === 'presence' && e.user === alice.name));
      if (presence.some((p) => !p.online)) break;
    }
    // One more short poll to catch a duplicate, if any node announced it twice.
    await new Promise((r) => setTimeout(r, 1500));
    presence.push(...(await pollEvents(B, bob, 0)).filter((e) => e.type === 'presence' && e.user === alice.name));
    expect(presence.map((p) => p.online)).to.deep.equal([true, false]);
    const after = await as(A, bob).get('/api/contacts').expect(200);
    expect(after.body.contacts[0]).to.include({ name: alice.name, online: false });
    expect(after.body.contacts[0].last_seen).to.equal(presence[1]!.last_seen);
    expect(after.body.contacts[0].conversation).to.be.a('string');
  });

  it('a long-poll parked on a node keeps its user online', async () => {
    const alice = await register(A, 'alice');
    const bob = await register(B, 'bob');
    await as(A, alice).post('/api/conversations').send({ with: bob.name }).expect(201);
    await pollEvents(A, alice);
    const parked = pollEvents(A, alice, 4); // longer than the 2 s window
    await new Promise((r) => setTimeout(r, 3000));
    const contacts = await as(B, bob).get('/api/contacts').expect(200);
    expect(contacts.body.contacts[0]).to.include({ name: alice.name, online: true });
    await parked;
  });
});

describe('encryption at rest', function () {
  this.timeout(30_000);
  let stack: Stack;
  before(async function () {
    await requireServices(this);
    stack = await startStack({ backend: 'real' });
  });
  after(async () => stack?.close());

  it('the messages table holds no plaintext, and conversation keys are stored wrapped', async () => {
    const url = stack.nodes[0]!.url;
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name })).body.conversation;
    const secret = 'the treasure is under the old oak tree';
    await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: secret }).expect(201);
    const rows = await stack.db.query<{ body: Buffer }>('SELECT body FROM messages WHERE conversation_id = $1', [conv.id]);
    expect(rows).to.have.length(1);
    expect(rows[0]!.body.includes(Buffer.from(secret))).to.equal(false);
    expect(rows[0]!.body.includes(Buffer.from('treasure'))).to.equal(false);
    const dump = await stack.db.query<{ t: string }>(`SELECT (SELECT string_agg(payload::text, ' ') FROM events) AS t`);
    expect(String(dump[0]!.t)).not.to.contain('treasure');
    const keys = await stack.db.query<{ wrapped_key: Buffer }>('SELECT wrapped_key FROM conversations WHERE id = $1', [conv.id]);
    expect(keys[0]!.wrapped_key.length).to.equal(1 + 12 + 32 + 16); // version, nonce, sealed 32-byte key, tag
    // And the API still reads it back.
    const history = await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200);
    expect(history.body.messages[0].text).to.equal(secret);
  });
});
