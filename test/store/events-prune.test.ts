import { expect } from 'chai';
import { as, pollEvents, register } from '../support/client.js';
import { useStack } from '../support/stack.js';

for (const backend of ['real', 'embedded'] as const) {
  describe(`pruning the events table (${backend === 'real' ? 'PostgreSQL' : 'PGlite'})`, function () {
    this.timeout(60_000);
    const suite = useStack({ backend });

    const idOf = async (name: string) =>
      Number((await suite.stack.db.query<{ id: number }>('SELECT id FROM users WHERE name = $1', [name]))[0]!.id);
    const seqs = async (userId: number) =>
      (await suite.stack.db.query<{ seq: number }>('SELECT seq FROM events WHERE user_id = $1 ORDER BY seq', [userId])).map((r) => Number(r.seq));

    it("bob's entries acknowledged over 30 days ago go; the unacknowledged one stays, and his phone's older cursor resumes at it", async () => {
      const url = suite.url();
      const alice = await register(url, 'alice');
      const bob = await register(url, 'bob');
      const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
      await pollEvents(url, bob);
      const phoneCursor = bob.cursor!; // bob's phone goes away here
      for (const text of ['m1', 'm2', 'm3']) await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text }).expect(201);
      expect((await pollEvents(url, bob)).filter((e) => e.type === 'message').map((e) => e.message.text)).to.deep.equal(['m1', 'm2', 'm3']);
      await pollEvents(url, bob); // the laptop acknowledges m1..m3
      await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'm4' }).expect(201); // not yet acknowledged
      const [aliceId, bobId] = [await idOf(alice.name), await idOf(bob.name)];
      const acked = Number((await suite.stack.db.query<{ a: number }>('SELECT acked_seq AS a FROM acks WHERE user_id = $1', [bobId]))[0]!.a);
      const bobBefore = await seqs(bobId);
      const aliceBefore = await seqs(aliceId);
      // Forty days pass for bob's entries (alice's stay recent)
      await suite.stack.db.query(`UPDATE events SET created_at = now() - interval '40 days' WHERE user_id = $1`, [bobId]);

      const pruned = await suite.stack.nodes[0]!.deps.core.pruning.run();
      expect(pruned).to.be.at.least(bobBefore.filter((s) => s <= acked).length);
      expect(await seqs(bobId), 'acknowledged and old: gone; unacknowledged: kept').to.deep.equal(bobBefore.filter((s) => s > acked));
      expect(await seqs(aliceId), 'acknowledged but recent: kept').to.deep.equal(aliceBefore);

      // The phone's cursor is older than what is kept: it still works and resumes at the oldest entry kept
      const phone = await as(url, bob).get(`/api/events?since=${phoneCursor}&wait=0`).expect(200);
      expect(phone.body.events.filter((e: any) => e.type === 'message').map((e: any) => e.message.text)).to.deep.equal(['m4']);
      // A new device starts at the oldest unacknowledged entry, as before
      const fresh = await as(url, bob).get('/api/events?wait=0').expect(200);
      expect(fresh.body.events.map((e: any) => e.message?.text)).to.include('m4');
      const next = await as(url, bob).get(`/api/events?since=${phone.body.cursor}&wait=0`).expect(200);
      expect(next.body.events.filter((e: any) => e.type === 'message')).to.deep.equal([]);
      // History is the messages table, untouched
      const history = await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200);
      expect(history.body.messages.map((m: any) => m.text)).to.deep.equal(['m1', 'm2', 'm3', 'm4']);
    });
  });
}
