import { expect } from 'chai';
import { accept, as, pollEvents, register } from '../support/client.js';
import { useStack } from '../support/stack.js';
import { webp } from '../media/images.js';

for (const backend of ['real', 'embedded'] as const) {
  describe(`RETENTION=until-delivered: a relay that keeps a message only until every recipient has it (${backend})`, function () {
    this.timeout(60_000);
    const suite = useStack({ backend, nodes: backend === 'real' ? 2 : 1, env: { RETENTION: 'until-delivered' } });
    const urls = () => [suite.url(0), suite.url(suite.stack.nodes.length - 1)];
    const purge = () => suite.stack.nodes[0]!.deps.core.retention.purge();
    const raw = async (convId: string) =>
      suite.stack.db.query<{ seq: number; n: number; attachment: unknown }>(
        'SELECT seq, octet_length(body)::int AS n, attachment FROM messages WHERE conversation_id = $1 ORDER BY seq',
        [convId],
      );

    it('keeps text and files until bob has them, then empties them; receipts and unread counts still work', async () => {
      const [A, B] = urls() as [string, string];
      const alice = await register(A, 'alice');
      const bob = await register(B, 'bob');
      const conv = (await as(A, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
      await accept(B, bob, conv.id); // bob consents: his read receipts reach alice
      await pollEvents(A, alice);
      await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'for your eyes only' }).expect(201);
      const upload = await as(A, alice).post(`/api/conversations/${conv.id}/files`).attach('file', await webp(300, 200), 'pic.webp').expect(201);
      const attachment = upload.body.message.attachment;

      await purge();
      expect((await raw(conv.id)).map((r) => r.n > 0)).to.deep.equal([true, true]); // not delivered yet: kept
      const got = await pollEvents(B, bob);
      expect(got.filter((e) => e.type === 'message').map((e) => e.message.text)).to.deep.equal(['for your eyes only', '']);
      await as(B, bob).get(attachment.url).expect(200); // bob fetches the picture while it is there
      await pollEvents(B, bob); // acknowledges: delivered
      const [keys] = await suite.stack.db.query<{ f: string; s: string; l: string }>(
        `SELECT blob_key AS f, thumbnails->'small'->>'key' AS s, thumbnails->'large'->>'key' AS l FROM attachments WHERE id = $1`,
        [attachment.id],
      );

      await purge();
      for (const key of [keys!.f, keys!.s, keys!.l]) expect(await suite.stack.nodes[0]!.deps.blobs.stat(key), key).to.equal(null);
      const rows = await raw(conv.id);
      expect(rows.map((r) => [r.seq, r.n, r.attachment])).to.deep.equal([
        [1, 0, null],
        [2, 0, null],
      ]);
      expect(await suite.stack.db.query('SELECT 1 FROM attachments WHERE conversation_id = $1', [conv.id])).to.deep.equal([]);
      await as(B, bob).get(attachment.url).expect(404);
      await as(B, bob).get(attachment.thumbnail_url).expect(404);
      for (const u of [alice, bob]) {
        expect((await as(A, u).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages).to.deep.equal([]);
      }
      const list = await as(B, bob).get('/api/conversations').expect(200);
      expect(list.body.conversations[0]).to.include({ unread: 2, last_message: null });

      // read receipts still reach alice: they come from the rows' seq and sender, not their content
      await as(B, bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: 2 }).expect(204);
      const receipts = (await pollEvents(A, alice)).filter((e) => e.type === 'receipt').map((e) => [e.status, e.up_to]);
      expect(receipts).to.deep.include(['read', 2]);
      // and the conversation goes on
      await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'next' }).expect(201);
      expect((await pollEvents(B, bob)).filter((e) => e.type === 'message').map((e) => e.message.text)).to.deep.equal(['next']);
    });

    it('in a group, waits for every member but the sender', async () => {
      const [A, B] = urls() as [string, string];
      const alice = await register(A, 'alice');
      const bob = await register(B, 'bob');
      const carol = await register(B, 'carol');
      const group = (await as(A, alice).post('/api/conversations').send({ title: 'Relay', members: [bob.name, carol.name] }).expect(201))
        .body.conversation;
      for (const u of [bob, carol]) await pollEvents(B, u);
      await as(A, alice).post(`/api/conversations/${group.id}/messages`).send({ text: 'all of you' }).expect(201);
      await pollEvents(B, bob);
      await pollEvents(B, bob); // bob's device acknowledges; carol's has not
      await purge();
      expect((await raw(group.id)).map((r) => r.n > 0)).to.deep.equal([true]);
      expect((await as(B, carol).get(`/api/conversations/${group.id}/messages`).expect(200)).body.messages.map((m: any) => m.text)).to.deep.equal([
        'all of you',
      ]);
      await pollEvents(B, carol);
      await pollEvents(B, carol);
      await purge();
      expect((await raw(group.id)).map((r) => r.n)).to.deep.equal([0]);
    });
  });
}
