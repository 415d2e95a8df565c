import { expect } from 'chai';
import supertest from 'supertest';
import { accept, as, pollEvents, register, waitForEvent, type TestUser } from '../support/client.js';
import { useStack } from '../support/stack.js';

/** Issue 13 A through the JSON API: edits, deletes for everyone, replies, reactions, and their events. */
describe('messages: edit, delete for everyone, replies and reactions (JSON API, two nodes)', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'real', nodes: 2 });
  const A = () => suite.url(0);
  const B = () => suite.url(1);

  /** alice (node A) and bob (node B) in a direct conversation, both streams read. */
  async function pair() {
    const alice = await register(A(), 'alice');
    const bob = await register(B(), 'bob');
    const conv = (await as(A(), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    await accept(B(), bob, conv.id);
    await pollEvents(A(), alice);
    await pollEvents(B(), bob);
    return { alice, bob, conv };
  }

  async function send(url: string, u: TestUser, convId: string, body: Record<string, unknown>) {
    return (await as(url, u).post(`/api/conversations/${convId}/messages`).send(body).expect(201)).body.message;
  }

  async function history(url: string, u: TestUser, convId: string): Promise<Array<Record<string, any>>> {
    return (await as(url, u).get(`/api/conversations/${convId}/messages`).expect(200)).body.messages;
  }

  it('alice edits her message: bob on the other node gets message_changed with the new text; history and the edit history show it', async () => {
    const { alice, bob, conv } = await pair();
    const m = await send(A(), alice, conv.id, { text: 'helo' });
    await waitForEvent(B(), bob, (e) => e.type === 'message' && e.message.id === m.id);
    const parked = waitForEvent(B(), bob, (e) => e.type === 'message_changed');
    const edited = (await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/edit`).send({ text: 'hello' }).expect(200)).body.message;
    expect(edited).to.include({ id: m.id, seq: m.seq, text: 'hello' });
    expect(edited.edited_at).to.be.a('string');
    const event = await parked;
    expect(event).to.deep.include({ type: 'message_changed', change: 'edited' });
    expect(event.message).to.include({ id: m.id, text: 'hello', from: alice.name, edited_at: edited.edited_at });
    // a second edit, as a form body through PATCH
    await supertest(B()).patch(`/api/conversations/${conv.id}/messages/${m.id}`).set('Authorization', `Bearer ${alice.token}`).type('form').send({ text: 'hello!' }).expect(200);
    const [shown] = await history(B(), bob, conv.id);
    expect(shown).to.include({ id: m.id, text: 'hello!' });
    const edits = (await as(B(), bob).get(`/api/conversations/${conv.id}/messages/${m.id}/edits`).expect(200)).body.edits;
    expect(edits.map((e: any) => e.text)).to.deep.equal(['helo', 'hello']);
    expect(edits[0].edited_at).to.be.a('string');
    // the edited text is sealed at rest, like bodies
    const rows = await suite.stack.db.query<{ body: Buffer }>('SELECT body FROM message_changes WHERE message_id = $1', [m.id]);
    expect(Buffer.from(rows[0]!.body).toString('latin1')).to.not.include('hello');
  });

  it('only the sender may edit; a deleted message cannot be edited (409 deleted); bad input answers 4xx', async () => {
    const { alice, bob, conv } = await pair();
    const m = await send(A(), alice, conv.id, { text: 'mine' });
    const no = await as(B(), bob).post(`/api/conversations/${conv.id}/messages/${m.id}/edit`).send({ text: 'yours' }).expect(403);
    expect(no.body.error.code).to.equal('forbidden');
    expect((await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/edit`).send({ text: '   ' }).expect(400)).body.error.code).to.equal('bad_text');
    expect((await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/edit`).send({}).expect(400)).body.error.code).to.equal('bad_text');
    expect((await as(A(), alice).post(`/api/conversations/${conv.id}/messages/mNoSuchMessage/edit`).send({ text: 'x' }).expect(404)).body.error.code).to.equal('not_found');
    const carol = await register(A(), 'carol');
    await as(A(), carol).post(`/api/conversations/${conv.id}/messages/${m.id}/edit`).send({ text: 'x' }).expect(403);
    await as(A(), carol).get(`/api/conversations/${conv.id}/messages/${m.id}/edits`).expect(403);
    await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/delete`).expect(200);
    expect((await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/edit`).send({ text: 'again' }).expect(409)).body.error.code).to.equal('deleted');
  });

  it('delete for everyone: a tombstone without text, file or reactions; twice is 200; the file no longer downloads', async () => {
    const { alice, bob, conv } = await pair();
    const up = await as(A(), alice).post(`/api/conversations/${conv.id}/files`).field('text', 'a file').attach('file', Buffer.from('secret notes'), { filename: 'notes.txt', contentType: 'text/plain' });
    expect(up.status).to.equal(201);
    const m = up.body.message;
    const fileUrl = m.attachment.url as string;
    await as(B(), bob).get(fileUrl).expect(200);
    await as(B(), bob).post(`/api/conversations/${conv.id}/messages/${m.id}/reactions`).send({ emoji: '👍' }).expect(200);
    await pollEvents(B(), bob);
    const parked = waitForEvent(B(), bob, (e) => e.type === 'message_changed' && e.change === 'deleted');
    const tomb = (await supertest(A()).delete(`/api/conversations/${conv.id}/messages/${m.id}`).set('Authorization', `Bearer ${alice.token}`).expect(200)).body.message;
    expect(tomb).to.include({ id: m.id, seq: m.seq, from: alice.name, sent_at: m.sent_at, text: '', deleted: true });
    expect(tomb).to.not.have.property('attachment');
    expect(tomb).to.not.have.property('reactions');
    const event = await parked;
    expect(event.message).to.include({ id: m.id, text: '', deleted: true });
    expect(event.message).to.not.have.property('attachment');
    const again = await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/delete`).expect(200);
    expect(again.body.message).to.include({ deleted: true });
    const [shown] = (await history(B(), bob, conv.id)).filter((x) => x.id === m.id);
    expect(shown).to.include({ text: '', deleted: true });
    expect(shown).to.not.have.property('attachment');
    const gone = await as(B(), bob).get(fileUrl);
    expect([404, 410]).to.include(gone.status);
    expect((await as(B(), bob).post(`/api/conversations/${conv.id}/messages/${m.id}/reactions`).send({ emoji: '👍' }).expect(409)).body.error.code).to.equal('deleted');
  });

  it('in a group its owner and admins may delete anyone\'s message, other members only their own', async () => {
    const owner = await register(A(), 'owner');
    const admin = await register(A(), 'admin');
    const member = await register(B(), 'member');
    const group = (await as(A(), owner).post('/api/conversations').send({ title: 'team', members: [admin.name, member.name] }).expect(201)).body.conversation;
    await accept(A(), admin, group.id);
    await accept(B(), member, group.id);
    await as(A(), owner).post(`/api/conversations/${group.id}/admins`).send({ name: admin.name }).expect(204);
    const m1 = await send(B(), member, group.id, { text: 'one' });
    const m2 = await send(B(), member, group.id, { text: 'two' });
    const m3 = await send(A(), owner, group.id, { text: 'three' });
    await as(A(), admin).post(`/api/conversations/${group.id}/messages/${m1.id}/delete`).expect(200);
    await as(A(), owner).post(`/api/conversations/${group.id}/messages/${m2.id}/delete`).expect(200);
    await as(B(), member).post(`/api/conversations/${group.id}/messages/${m3.id}/delete`).expect(403);
    const byId = new Map((await history(B(), member, group.id)).map((x) => [x.id, x]));
    expect(byId.get(m1.id)).to.include({ deleted: true });
    expect(byId.get(m2.id)).to.include({ deleted: true });
    expect(byId.get(m3.id)).to.include({ text: 'three' }).and.not.have.property('deleted');
  });

  it('a reply shows the quoted message (cut to 200 characters, as it is now) and keeps its id once the original is deleted', async () => {
    const { alice, bob, conv } = await pair();
    const long = 'x'.repeat(250);
    const orig = await send(A(), alice, conv.id, { text: long });
    await pollEvents(B(), bob);
    const reply = (await as(B(), bob).post(`/api/conversations/${conv.id}/messages`).type('form').send({ text: 'agreed', reply_to: orig.id }).expect(201)).body.message;
    expect(reply.reply_to).to.deep.equal({ id: orig.id, from: alice.name, text: 'x'.repeat(200) });
    const event = await waitForEvent(A(), alice, (e) => e.type === 'message' && e.message.id === reply.id);
    expect(event.message.reply_to).to.deep.include({ id: orig.id, from: alice.name });
    await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${orig.id}/edit`).send({ text: 'short' }).expect(200);
    expect((await history(A(), alice, conv.id)).find((x) => x.id === reply.id)!.reply_to).to.deep.equal({ id: orig.id, from: alice.name, text: 'short' });
    await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${orig.id}/delete`).expect(200);
    const shown = (await history(B(), bob, conv.id)).find((x) => x.id === reply.id)!;
    expect(shown.text).to.equal('agreed');
    expect(shown.reply_to).to.deep.equal({ id: orig.id, from: alice.name, text: '', deleted: true });
  });

  it('reply_to must be a message of this conversation that I may read (400 bad_reply_to), and a refused reply sends nothing', async () => {
    const { alice, bob, conv } = await pair();
    const other = (await as(A(), alice).post('/api/conversations').send({ title: 'elsewhere', members: [] }).expect(201)).body.conversation;
    const there = await send(A(), alice, other.id, { text: 'not here' });
    for (const replyTo of ['mNoSuchMessage', there.id, 'x'.repeat(100)]) {
      const res = await as(B(), bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'hi', reply_to: replyTo }).expect(400);
      expect(res.body.error.code).to.equal('bad_reply_to');
    }
    expect(await history(B(), bob, conv.id)).to.have.length(0);
  });

  it('reactions: a set of emoji per user, add and remove (also through DELETE and form bodies), grouped by emoji in first-use order', async () => {
    const { alice, bob, conv } = await pair();
    const m = await send(A(), alice, conv.id, { text: 'lunch?' });
    const path = `/api/conversations/${conv.id}/messages/${m.id}/reactions`;
    await as(B(), bob).post(path).send({ emoji: '🍕' }).expect(200);
    await as(A(), alice).post(path).type('form').send({ emoji: '👍' }).expect(200);
    await as(A(), alice).post(path).send({ emoji: '🍕' }).expect(200);
    const twice = (await as(A(), alice).post(path).send({ emoji: '🍕' }).expect(200)).body.message; // a set: no duplicate
    const names = [alice.name, bob.name].sort();
    expect(twice.reactions).to.deep.equal([
      { emoji: '🍕', users: names },
      { emoji: '👍', users: [alice.name] },
    ]);
    await pollEvents(A(), alice);
    const parked = waitForEvent(A(), alice, (e) => e.type === 'message_changed' && e.change === 'reactions');
    await supertest(B()).delete(`${path}/${encodeURIComponent('🍕')}`).set('Authorization', `Bearer ${bob.token}`).expect(200);
    // first use among the reactions still there: alice chose 👍 before 🍕
    expect((await parked).message.reactions).to.deep.equal([
      { emoji: '👍', users: [alice.name] },
      { emoji: '🍕', users: [alice.name] },
    ]);
    await as(A(), alice).post(`${path}/remove`).type('form').send({ emoji: '🍕' }).expect(200);
    const left = (await as(A(), alice).post(`${path}/remove`).send({ emoji: '👍' }).expect(200)).body.message;
    expect(left).to.not.have.property('reactions');
    expect((await history(B(), bob, conv.id))[0]).to.not.have.property('reactions');
  });

  it('reactions: bad emoji answer 400 bad_emoji; at most 20 per user per message (409 too_many_reactions); strangers are refused', async () => {
    const { alice, bob, conv } = await pair();
    const m = await send(A(), alice, conv.id, { text: 'react' });
    const path = `/api/conversations/${conv.id}/messages/${m.id}/reactions`;
    for (const emoji of ['', 'two words', 'x'.repeat(17)]) {
      expect((await as(B(), bob).post(path).send({ emoji }).expect(400)).body.error.code).to.equal('bad_emoji');
    }
    expect((await as(B(), bob).post(path).send({}).expect(400)).body.error.code).to.equal('bad_emoji');
    for (let i = 0; i < 20; i++) await as(B(), bob).post(path).send({ emoji: `e${i}` }).expect(200);
    expect((await as(B(), bob).post(path).send({ emoji: 'e20' }).expect(409)).body.error.code).to.equal('too_many_reactions');
    await as(A(), alice).post(path).send({ emoji: 'e20' }).expect(200); // the limit is per user
    const carol = await register(A(), 'carol');
    await as(A(), carol).post(path).send({ emoji: 'x' }).expect(403);
  });

  it('bob, offline, gets the changes in order from his cursor on either node', async () => {
    const { alice, bob, conv } = await pair();
    const m = await send(A(), alice, conv.id, { text: 'v1' });
    await pollEvents(B(), bob);
    const since = bob.cursor!;
    await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/edit`).send({ text: 'v2' }).expect(200);
    await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/reactions`).send({ emoji: '🎉' }).expect(200);
    await as(A(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/delete`).expect(200);
    for (const node of [A(), B()]) {
      const res = await as(node, bob).get(`/api/events?since=${since}&wait=0`).expect(200);
      const changes = res.body.events.filter((e: any) => e.type === 'message_changed');
      expect(changes.map((e: any) => e.change)).to.deep.equal(['edited', 'reactions', 'deleted']);
      // each event shows the message as it is now
      for (const e of changes) expect(e.message).to.include({ id: m.id, deleted: true });
    }
  });
});
