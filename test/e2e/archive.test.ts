import { expect } from 'chai';
import type { Readable } from 'node:stream';
import { accept, as, pollEvents, register, type TestUser } from '../support/client.js';
import { useStack } from '../support/stack.js';

async function bytesOf(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of stream) parts.push(p as Buffer);
  return Buffer.concat(parts);
}

for (const backend of ['real', 'embedded'] as const) {
  describe(`archive: old messages move to blob storage and read back (${backend})`, function () {
    this.timeout(60_000);
    const suite = useStack({ backend, nodes: backend === 'real' ? 2 : 1 });
    const node = (i: number) => suite.stack.nodes[Math.min(i, suite.stack.nodes.length - 1)]!;
    const url = (i: number) => node(i).url;

    /** alice sends `n` messages to bob; bob reads them all; returns the conversation and bob's first cursor. */
    async function chat(n: number, tag: string) {
      const alice = await register(url(0), 'alice');
      const bob = await register(url(1), 'bob');
      const conv = (await as(url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
      await accept(url(1), bob, conv.id); // bob consents: his read receipts reach alice
      await pollEvents(url(1), bob);
      const bobStart = bob.cursor!;
      for (let i = 1; i <= n; i++) {
        await as(url(i % 2), alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `${tag} ${i}`, client_id: `c${i}` }).expect(201);
      }
      await pollEvents(url(1), bob);
      await pollEvents(url(1), bob); // acknowledged: delivered
      await as(url(1), bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: n }).expect(204);
      return { alice, bob, conv, bobStart };
    }

    const tableCount = async (convId: string) =>
      Number((await suite.stack.db.query<{ n: number }>('SELECT count(*)::int AS n FROM messages WHERE conversation_id = $1', [convId]))[0]!.n);

    async function pageAll(u: TestUser, convId: string, limit: number, at = 0): Promise<Array<Record<string, any>>[]> {
      const pages: Array<Record<string, any>>[] = [];
      let before = '';
      for (let i = 0; i < 50; i++) {
        const res = await as(url(at), u).get(`/api/conversations/${convId}/messages?limit=${limit}${before}`).expect(200);
        if (res.body.messages.length === 0) break;
        pages.push(res.body.messages);
        before = `&before=${res.body.messages[0].seq}`;
      }
      return pages;
    }

    it('history pages back through archived and table messages alike, in order, with status; the last message stays in the table', async () => {
      const { alice, bob, conv } = await chat(12, 'hello');
      const before = await as(url(0), alice).get(`/api/conversations/${conv.id}/messages?limit=200`).expect(200);
      const report = await node(0).deps.core.archive.run(new Date(Date.now() + 1000), 5);
      expect(report.messages).to.be.at.least(11); // earlier tests' conversations may join in
      expect(await tableCount(conv.id)).to.equal(1);
      const chunks = await suite.stack.db.query<{ from_seq: number; to_seq: number }>(
        'SELECT from_seq, to_seq FROM archives WHERE conversation_id = $1 ORDER BY from_seq',
        [conv.id],
      );
      expect(chunks.map((c) => [Number(c.from_seq), Number(c.to_seq)])).to.deep.equal([[1, 5], [6, 10], [11, 11]]);

      const after = await as(url(1), alice).get(`/api/conversations/${conv.id}/messages?limit=200`).expect(200);
      expect(after.body.messages).to.deep.equal(before.body.messages); // text, client_id, status: nothing changed
      expect(after.body.messages.map((m: any) => m.text)).to.deep.equal(Array.from({ length: 12 }, (_, i) => `hello ${i + 1}`));
      expect(after.body.messages[0]).to.include({ status: 'read', client_id: 'c1' });

      // pages of 4 cross chunk boundaries (chunks of 5) and the table/archive boundary
      const pages = await pageAll(bob, conv.id, 4, 1);
      expect(pages.map((p) => p.map((m) => m.text.split(' ')[1]))).to.deep.equal([
        ['9', '10', '11', '12'],
        ['5', '6', '7', '8'],
        ['1', '2', '3', '4'],
      ]);

      const list = await as(url(0), bob).get('/api/conversations').expect(200);
      expect(list.body.conversations[0].last_message).to.include({ text: 'hello 12' });
    });

    it('a replay from an old cursor shows archived messages as the stream first gave them', async () => {
      const { bob, conv, bobStart } = await chat(6, 'replay');
      const first = await as(url(1), bob).get(`/api/events?since=${bobStart}&wait=0`).expect(200);
      await node(0).deps.core.archive.run(new Date(Date.now() + 1000), 4);
      expect(await tableCount(conv.id)).to.equal(1);
      const replay = await as(url(0), bob).get(`/api/events?since=${bobStart}&wait=0`).expect(200);
      const messages = (body: any) => body.events.filter((e: any) => e.type === 'message').map((e: any) => e.message);
      expect(messages(replay.body)).to.have.length(6);
      expect(messages(replay.body)).to.deep.equal(messages(first.body));
    });

    it('archive chunks are sealed: the stored bytes show neither texts nor names', async () => {
      const { alice, bob, conv } = await chat(3, 'confidential');
      await node(0).deps.core.archive.run(new Date(Date.now() + 1000));
      const rows = await suite.stack.db.query<{ blob_key: string }>('SELECT blob_key FROM archives WHERE conversation_id = $1', [conv.id]);
      expect(rows).to.have.length(1);
      const raw = await bytesOf(await node(0).deps.blobs.get(rows[0]!.blob_key));
      expect(raw.length).to.be.above(0);
      for (const needle of ['confidential', alice.name, bob.name, 'client_id']) expect(raw.includes(needle), needle).to.equal(false);
    });

    it('a run whose blob store fails leaves every message in the table', async () => {
      const { alice, conv } = await chat(4, 'kept');
      const blobs = node(0).deps.blobs;
      const put = blobs.put;
      blobs.put = async () => {
        throw new Error('disk full');
      };
      try {
        // the conversation is skipped (and counted), the run goes on
        expect((await node(0).deps.core.archive.run(new Date(Date.now() + 1000))).failed).to.be.at.least(1);
      } finally {
        blobs.put = put;
      }
      expect(await tableCount(conv.id)).to.equal(4);
      const history = await as(url(0), alice).get(`/api/conversations/${conv.id}/messages`).expect(200);
      expect(history.body.messages).to.have.length(4);
      // and the next run archives them
      await node(0).deps.core.archive.run(new Date(Date.now() + 1000));
      expect(await tableCount(conv.id)).to.equal(1);
    });

    it('messages a member has not read stay in the table, so unread counts and read receipts stay exact', async () => {
      const { alice, bob, conv } = await chat(2, 'seen');
      for (let i = 1; i <= 3; i++) {
        await as(url(0), alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `unseen ${i}` }).expect(201);
      }
      await node(0).deps.core.archive.run(new Date(Date.now() + 1000));
      expect(await tableCount(conv.id)).to.equal(3);
      const list = await as(url(1), bob).get('/api/conversations').expect(200);
      expect(list.body.conversations.find((c: any) => c.id === conv.id).unread).to.equal(3);
      await pollEvents(url(0), alice);
      await as(url(1), bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: 5 }).expect(204);
      const events = await pollEvents(url(0), alice);
      expect(events.filter((e) => e.type === 'receipt' && e.status === 'read').map((e) => e.up_to)).to.deep.equal([5]);
    });

    it('messages newer than the cutoff stay in the table; new messages after a run page back into the archive', async () => {
      const { alice, conv } = await chat(3, 'old');
      const cutoff = new Date(Date.now() + 1000);
      await new Promise((r) => setTimeout(r, 1100));
      for (let i = 1; i <= 2; i++) {
        await as(url(0), alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `new ${i}` }).expect(201);
      }
      await node(0).deps.core.archive.run(cutoff);
      expect(await tableCount(conv.id)).to.equal(2);
      const pages = await pageAll(alice, conv.id, 2);
      expect(pages.map((p) => p.length)).to.deep.equal([2, 2, 1]);
      expect(pages.reverse().flat().map((m) => m.text)).to.deep.equal(['old 1', 'old 2', 'old 3', 'new 1', 'new 2']);
    });

    if (backend === 'real') {
      it('two nodes archiving at once archive each message once and lose none', async () => {
        const { alice, conv } = await chat(23, 'race');
        const cutoff = new Date(Date.now() + 1000);
        const reports = await Promise.all([node(0).deps.core.archive.run(cutoff, 4), node(1).deps.core.archive.run(cutoff, 4)]);
        expect(reports.map((r) => r.messages).reduce((a, b) => a + b)).to.be.at.least(22); // others' conversations may join in
        const ranges = await suite.stack.db.query<{ from_seq: number; to_seq: number }>(
          'SELECT from_seq, to_seq FROM archives WHERE conversation_id = $1 ORDER BY from_seq',
          [conv.id],
        );
        const covered = ranges.flatMap((r) => Array.from({ length: Number(r.to_seq) - Number(r.from_seq) + 1 }, (_, i) => Number(r.from_seq) + i));
        expect(covered).to.deep.equal(Array.from({ length: 22 }, (_, i) => i + 1)); // no overlap, no gap
        const history = await as(url(1), alice).get(`/api/conversations/${conv.id}/messages?limit=200`).expect(200);
        expect(history.body.messages.map((m: any) => m.seq)).to.deep.equal(Array.from({ length: 23 }, (_, i) => i + 1));
      });
    }
  });
}
