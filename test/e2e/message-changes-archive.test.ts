import { expect } from 'chai';
import { accept, as, pollEvents, register, waitForEvent } from '../support/client.js';
import { useStack } from '../support/stack.js';

for (const backend of ['real', 'embedded'] as const) {
  describe(`message changes on archived messages: history shows their current state (${backend})`, function () {
    this.timeout(60_000);
    const suite = useStack({ backend, nodes: backend === 'real' ? 2 : 1 });
    const url = (i: number) => suite.url(Math.min(i, suite.stack.nodes.length - 1));

    it('alice edits and deletes archived messages, bob reacts to one and replies to another: history and bob\'s events show it; the chunks are not rewritten', async () => {
      const alice = await register(url(0), 'alice');
      const bob = await register(url(1), 'bob');
      const conv = (await as(url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
      await accept(url(1), bob, conv.id);
      const sent = [];
      for (let i = 1; i <= 6; i++) sent.push((await as(url(0), alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `old ${i}` }).expect(201)).body.message);
      await pollEvents(url(1), bob);
      await pollEvents(url(1), bob);
      await as(url(1), bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: 6 }).expect(204);
      await suite.stack.nodes[0]!.deps.core.archive.run(new Date(Date.now() + 1000), 3);
      const inTable = await suite.stack.db.query<{ id: string }>('SELECT id FROM messages WHERE conversation_id = $1', [conv.id]);
      expect(inTable.map((r) => r.id)).to.deep.equal([sent[5].id]); // 1-5 archived
      const chunks = await suite.stack.db.query<{ blob_key: string }>('SELECT blob_key FROM archives WHERE conversation_id = $1 ORDER BY from_seq', [conv.id]);
      await pollEvents(url(1), bob);

      const [m1, m2, m3] = sent as [any, any, any];
      await as(url(0), alice).post(`/api/conversations/${conv.id}/messages/${m1.id}/edit`).send({ text: 'old 1, edited' }).expect(200);
      await as(url(1), bob).post(`/api/conversations/${conv.id}/messages/${m1.id}/reactions`).send({ emoji: '😀' }).expect(200);
      await as(url(0), alice).post(`/api/conversations/${conv.id}/messages/${m2.id}/delete`).expect(200);
      const reply = (await as(url(1), bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'about that', reply_to: m3.id }).expect(201)).body.message;
      expect(reply.reply_to).to.deep.equal({ id: m3.id, from: alice.name, text: 'old 3' });

      const history = (await as(url(1), bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages as any[];
      const byId = new Map(history.map((m) => [m.id, m]));
      expect(byId.get(m1.id)).to.include({ text: 'old 1, edited' }).and.have.property('edited_at');
      expect(byId.get(m1.id).reactions).to.deep.equal([{ emoji: '😀', users: [bob.name] }]);
      expect(byId.get(m2.id)).to.include({ text: '', deleted: true });
      expect(byId.get(reply.id).reply_to).to.deep.equal({ id: m3.id, from: alice.name, text: 'old 3' });
      const edits = (await as(url(0), alice).get(`/api/conversations/${conv.id}/messages/${m1.id}/edits`).expect(200)).body.edits;
      expect(edits.map((e: any) => e.text)).to.deep.equal(['old 1']);

      const events = await pollEvents(url(1), bob);
      const changes = events.filter((e) => e.type === 'message_changed');
      expect(changes.map((e) => [e.change, e.message.id])).to.deep.equal([
        ['edited', m1.id],
        ['reactions', m1.id],
        ['deleted', m2.id],
      ]);
      // the archive chunks stay as they were written
      const after = await suite.stack.db.query<{ blob_key: string }>('SELECT blob_key FROM archives WHERE conversation_id = $1 ORDER BY from_seq', [conv.id]);
      expect(after).to.deep.equal(chunks);
    });
  });

  describe(`message changes under RETENTION=until-delivered (${backend})`, function () {
    this.timeout(60_000);
    const suite = useStack({ backend, nodes: 1, env: { RETENTION: 'until-delivered' } });
    const purge = () => suite.stack.nodes[0]!.deps.core.retention.purge();

    it('changes to a message the relay has already emptied still reach bob: the new text, a tombstone, or reactions marked purged', async () => {
      const U = suite.url(0);
      const alice = await register(U, 'alice');
      const bob = await register(U, 'bob');
      const conv = (await as(U, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
      await accept(U, bob, conv.id);
      const a = (await as(U, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'first' }).expect(201)).body.message;
      const b = (await as(U, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'second' }).expect(201)).body.message;
      await pollEvents(U, bob);
      await pollEvents(U, bob); // acknowledged: delivered
      expect(await purge()).to.be.at.least(2); // the run's shared embedded database may hold others

      await as(U, alice).post(`/api/conversations/${conv.id}/messages/${a.id}/edit`).send({ text: 'first, fixed' }).expect(200);
      const edited = await waitForEvent(U, bob, (e) => e.type === 'message_changed');
      expect(edited.message).to.include({ id: a.id, text: 'first, fixed' }).and.not.have.property('purged');

      const reacted = (await as(U, bob).post(`/api/conversations/${conv.id}/messages/${b.id}/reactions`).send({ emoji: '👍' }).expect(200)).body.message;
      expect(reacted).to.include({ id: b.id, text: '', purged: true });
      expect(reacted.reactions).to.deep.equal([{ emoji: '👍', users: [bob.name] }]);

      await as(U, alice).post(`/api/conversations/${conv.id}/messages/${b.id}/delete`).expect(200);
      const events = await pollEvents(U, bob);
      const deleted = events.find((e) => e.type === 'message_changed' && e.change === 'deleted');
      expect(deleted?.message).to.include({ id: b.id, text: '', deleted: true });
      // history stays empty: a relay keeps no history
      expect((await as(U, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages).to.deep.equal([]);
    });
  });
}
