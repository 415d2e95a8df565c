import { expect } from 'chai';
import { accept, as, pollEvents, register } from '../support/client.js';
import { flushPresence, useStack } from '../support/stack.js';

/**
 * Contact consent: a stranger's first message is a request. Until the recipient replies or
 * accepts, the stranger learns nothing of them — not whether they are online, not when they were
 * last seen, not that they read the message. The recipient can decline: they leave the
 * conversation and hear nothing more from it.
 */
describe('contact consent', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'embedded' });

  async function request() {
    const mallory = await register(suite.url(), 'mal');
    const vic = await register(suite.url(), 'vic');
    const conv = (await as(suite.url(), mallory).post('/api/conversations').send({ with: vic.name }).expect(201)).body.conversation;
    await pollEvents(suite.url(), mallory);
    return { mallory, vic, conv: conv as { id: string } };
  }
  const contactsOf = async (u: Parameters<typeof as>[1]) =>
    (await as(suite.url(), u).get('/api/contacts').expect(200)).body.contacts as Array<Record<string, any>>;

  it("a stranger's first message shares nothing of the recipient until they reply", async () => {
    const url = suite.url();
    const { mallory, vic, conv } = await request();
    const sent = (await as(url, mallory).post(`/api/conversations/${conv.id}/messages`).send({ text: 'hi, remember me?' }).expect(201)).body.message;
    // vic comes online, reads it
    const got = await pollEvents(url, vic);
    expect(got.filter((e) => e.type === 'message').map((e) => e.message.text)).to.deep.equal(['hi, remember me?']);
    await pollEvents(url, vic); // acknowledged: delivered
    await as(url, vic).post(`/api/conversations/${conv.id}/read`).send({ up_to: sent.seq }).expect(204);
    await flushPresence(suite.stack);
    // mallory: vic shows offline with no last seen, no presence news, no read receipt
    const seen = (await contactsOf(mallory)).find((c) => c.name === vic.name)!;
    expect(seen).to.include({ online: false, last_seen: null, shared: false, request: false });
    const events = await pollEvents(url, mallory);
    expect(events.filter((e) => e.type === 'presence')).to.deep.equal([]);
    expect(events.filter((e) => e.type === 'receipt').map((e) => e.status)).to.deep.equal(['delivered']);
    const mine = (await as(url, mallory).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
    expect(mine[0].status).to.equal('delivered');
    // vic sees a request from mallory (mallory, who opened it, shares her presence)
    expect((await contactsOf(vic)).find((c) => c.name === mallory.name)).to.include({ request: true, shared: true, online: true });

    // vic replies: from now on mallory sees vic's presence and what vic reads
    const reply = (await as(url, vic).post(`/api/conversations/${conv.id}/messages`).send({ text: 'oh, hello' }).expect(201)).body.message;
    expect((await contactsOf(mallory)).find((c) => c.name === vic.name)).to.include({ online: true, shared: true });
    expect((await contactsOf(vic)).find((c) => c.name === mallory.name)).to.include({ request: false });
    const next = (await as(url, mallory).post(`/api/conversations/${conv.id}/messages`).send({ text: 'great' }).expect(201)).body.message;
    await as(url, vic).post(`/api/conversations/${conv.id}/read`).send({ up_to: next.seq }).expect(204);
    const after = await pollEvents(url, mallory);
    expect(after.filter((e) => e.type === 'receipt' && e.status === 'read').map((e) => e.up_to)).to.deep.equal([next.seq]);
    expect(reply.seq).to.be.below(next.seq);
  });

  it('accepting without replying shares the same; declining leaves the conversation', async () => {
    const url = suite.url();
    const a = await request();
    await accept(url, a.vic, a.conv.id);
    expect((await contactsOf(a.mallory)).find((c) => c.name === a.vic.name)).to.include({ shared: true });
    const acceptedEvents = await pollEvents(url, a.mallory);
    expect(acceptedEvents.some((e) => e.type === 'conversation' && e.change === 'accepted')).to.equal(true);

    const d = await request();
    await as(url, d.vic).post(`/api/conversations/${d.conv.id}/decline`).expect(204);
    const listed = (await as(url, d.vic).get('/api/conversations').expect(200)).body.conversations as Array<{ id: string }>;
    expect(listed.map((c) => c.id)).to.not.include(d.conv.id);
    await pollEvents(url, d.vic);
    await as(url, d.mallory).post(`/api/conversations/${d.conv.id}/messages`).send({ text: 'are you there?' }).expect(201);
    expect((await pollEvents(url, d.vic)).filter((e) => e.type === 'message')).to.deep.equal([]);
    expect((await contactsOf(d.vic)).map((c) => c.name)).to.not.include(d.mallory.name);
    // vic changes her mind and opens the chat herself: back in, from now on
    const back = await as(url, d.vic).post('/api/conversations').send({ with: d.mallory.name }).expect(200);
    expect(back.body.conversation.id).to.equal(d.conv.id);
    const history = (await as(url, d.vic).get(`/api/conversations/${d.conv.id}/messages`).expect(200)).body.messages;
    expect(history).to.deep.equal([]);
  });
});
