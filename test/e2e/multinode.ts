import { expect } from 'chai';
import { accept, as, pollEvents, register, waitForEvent } from '../support/client.js';
import { flushPresence, startStack, useStack } from '../support/stack.js';

/**
 * The multinode suite: nodes on one database and one bus, behind a load balancer that is not
 * sticky. `env` points the nodes elsewhere (PgBouncer, a Redis Cluster); read when the suite starts.
 */
export function multinodeSuite(title: string, env: Record<string, string> = {}, backend: 'real' | 'embedded' = 'real'): void {
  describe(title, function () {
    this.timeout(60_000);
    const suite = useStack({ backend, nodes: 2, env });
    let A: string;
    let B: string;
    before(() => {
      [A, B] = [suite.url(0), suite.url(1)];
    });

    /** alice on node a, bob on node b, their direct conversation, both streams read once. */
    async function pair(a = A, b = B) {
      const alice = await register(a, 'alice');
      const bob = await register(b, 'bob');
      const conv = (await as(a, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
      await accept(b, bob, conv.id);
      await pollEvents(a, alice);
      await pollEvents(b, bob);
      return { alice, bob, conv };
    }

    it("bob's long-poll parked on node B wakes as soon as alice sends on node A", async () => {
      const { alice, bob, conv } = await pair();
      await flushPresence(suite.stack); // presence news of the pair lands now, not while bob is parked
      await pollEvents(B, bob);
      const started = Date.now();
      const parked = pollEvents(B, bob, 20);
      await new Promise((r) => setTimeout(r, 300)); // let it park
      expect(suite.stack.nodes[1]!.deps.lot.parked).to.equal(1);
      await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'across nodes' }).expect(201);
      const events = await parked;
      expect(Date.now() - started).to.be.below(3000); // woken, not timed out after 20 s
      expect(events.map((e) => e.message?.text)).to.include('across nodes');
    });

    it('bob, offline, gets alice\'s messages in order from his cursor on either node; the same cursor replays the same batch', async () => {
      const { alice, bob, conv } = await pair();
      // presence news of the new pair (coalesced per second) would otherwise land between the two
      // reads below and make the second one longer: write it now and move bob's cursor past it
      await flushPresence(suite.stack);
      await pollEvents(B, bob);
      const since = bob.cursor!;
      for (let i = 1; i <= 5; i++) {
        const node = i % 2 ? A : B; // alice's sends alternate nodes too
        await as(node, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: `m${i}` }).expect(201);
      }
      const first = await as(B, bob).get(`/api/events?since=${since}&wait=0`).expect(200);
      const replay = await as(A, bob).get(`/api/events?since=${since}&wait=0`).expect(200);
      const texts = (body: any) => body.events.filter((e: any) => e.type === 'message').map((e: any) => e.message.text);
      expect(texts(first.body)).to.deep.equal(['m1', 'm2', 'm3', 'm4', 'm5']);
      expect(replay.body.events.map((e: any) => e.message?.id)).to.deep.equal(first.body.events.map((e: any) => e.message?.id));
      expect(replay.body.cursor).to.equal(first.body.cursor);
    });

    it('a poll without since starts at the oldest event no device of bob acknowledged', async () => {
      const { alice, bob, conv } = await pair();
      await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'unacked' }).expect(201);
      const fresh = await as(B, bob).get('/api/events?wait=0').expect(200); // a new device, no cursor
      expect(fresh.body.events.map((e: any) => e.message?.text)).to.include('unacked');
    });

    it('a sender offline when bob read learns delivered and read from its stream when back, on the other node', async () => {
      const { alice, bob, conv } = await pair();
      const sent = await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'are you there' }).expect(201);
      await pollEvents(B, bob);
      await pollEvents(B, bob); // acknowledges
      await as(B, bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: sent.body.message.seq }).expect(204);
      const events = await pollEvents(B, alice); // alice comes back on node B
      const receipts = events.filter((e) => e.type === 'receipt').map((e) => [e.status, e.user, e.up_to]);
      expect(receipts).to.deep.equal([
        ['delivered', bob.name, sent.body.message.seq],
        ['read', bob.name, sent.body.message.seq],
      ]);
    });

    it('no acknowledged message is lost when node A dies between commit and wake-up', async () => {
      // A stack of its own, since one of its nodes dies: node X "dies" right after its commit
      // (its wake-ups dropped), then is killed; node Y must still deliver the message.
      const doomed = await startStack({ backend, nodes: 2, env });
      try {
        const [X, Y] = doomed.nodes.map((n) => n.url) as [string, string];
        const { alice, bob, conv } = await pair(X, Y);
        const nodeX = doomed.nodes[0]!;
        nodeX.deps.core.notifier.wake = () => undefined; // the process dies after COMMIT, before PUBLISH
        const parked = pollEvents(Y, bob, 2);
        await new Promise((r) => setTimeout(r, 200));
        const sent = await as(X, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'survives' }).expect(201);
        await nodeX.kill();
        const got = [...(await parked), ...(await pollEvents(Y, bob, 0))];
        expect(got.filter((e) => e.type === 'message').map((e) => e.message.id)).to.deep.equal([sent.body.message.id]);
      } finally {
        await doomed.close();
      }
    });

    it("a poll woken by another node's send answers from the wake-up, with exactly what a read of the stream gives", async () => {
      const { alice, bob, conv } = await pair();
      await flushPresence(suite.stack); // presence news of the pair lands now, not while bob is parked
      await pollEvents(B, bob);
      await pollEvents(A, alice);
      const reads = async (node: number, source: string) =>
        (await suite.stack.nodes[node]!.deps.metrics.streamReads.get()).values.find((v) => v.labels['source'] === source)?.value ?? 0;
      const fromWakeups = await reads(1, 'wakeup');
      const since = bob.cursor!;
      const parked = pollEvents(B, bob, 20);
      await new Promise((r) => setTimeout(r, 300));
      await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'carried', client_id: 'c1' }).expect(201);
      const woken = await parked;
      expect(await reads(1, 'wakeup')).to.equal(fromWakeups + 1); // no database read for it
      const replay = await as(B, bob).get(`/api/events?since=${since}&wait=0`).expect(200); // read from the database
      expect(woken).to.deep.equal(replay.body.events);
      expect(bob.cursor).to.equal(replay.body.cursor);
      expect(woken[0]!.message).to.not.have.property('client_id'); // the sender's own id is not shown to others
      // bob's next poll acknowledges; alice's poll on A is woken by the delivered receipt, carried too
      const aliceSince = alice.cursor!;
      await pollEvents(B, bob);
      const events = await waitForEvent(A, alice, (e) => e.type === 'receipt');
      const again = await as(A, alice).get(`/api/events?since=${aliceSince}&wait=0`).expect(200);
      expect(again.body.events.filter((e: any) => e.type === 'receipt')).to.deep.include(events);
    });

    it('a group message carried to several parked members shows each of them what a read of their stream gives', async () => {
      const alice = await register(A, 'alice');
      const bob = await register(B, 'bob');
      const carol = await register(B, 'carol');
      const group = (await as(A, alice).post('/api/conversations').send({ title: 'Crew', members: [bob.name, carol.name] }).expect(201))
        .body.conversation;
      for (const u of [bob, carol]) await accept(B, u, group.id); // they share their presence with the group
      // bob's and carol's first requests bring them online: let each see the news of the two others
      // coming online before parking, or that news (not the message) may be what wakes them
      const unseenBy = new Map([
        [bob, new Set([alice.name, carol.name])],
        [carol, new Set([alice.name, bob.name])],
      ]);
      const see = (u: typeof bob, events: Array<Record<string, any>>) => {
        for (const e of events) if (e.type === 'presence' && e.online) unseenBy.get(u)!.delete(e.user);
      };
      for (const u of [bob, carol]) see(u, await pollEvents(B, u));
      for (const [u, unseen] of unseenBy) {
        for (let i = 0; i < 10 && unseen.size > 0; i++) see(u, await pollEvents(B, u, 3));
        expect([...unseen], `presence news ${u.name} never got`).to.deep.equal([]);
      }
      const since = [bob.cursor!, carol.cursor!];
      const parked = [pollEvents(B, bob, 20), pollEvents(B, carol, 20)];
      await new Promise((r) => setTimeout(r, 300));
      await as(A, alice).post(`/api/conversations/${group.id}/messages`).send({ text: 'all aboard', client_id: 'g1' }).expect(201);
      const [forBob, forCarol] = await Promise.all(parked);
      expect(forBob).to.deep.equal(forCarol);
      expect(forBob[0]!.message).to.deep.include({ text: 'all aboard', from: alice.name });
      expect(forBob[0]!.message).to.not.have.property('client_id');
      const replay = await as(B, carol).get(`/api/events?since=${since[1]}&wait=0`).expect(200);
      expect(forCarol).to.deep.equal(replay.body.events);
    });

    it('a wake-up lost with its node delays a parked poll on a node that trusts its known head, but never loses the message', async () => {
      const doomed = await startStack({ backend, nodes: 2, env });
      try {
        const [X, Y] = doomed.nodes.map((n) => n.url) as [string, string];
        const { alice, bob, conv } = await pair(X, Y);
        await pollEvents(Y, bob, 1); // Y now knows bob's head (and will trust it for a while)
        doomed.nodes[0]!.deps.core.notifier.wake = () => undefined; // X dies after COMMIT, before PUBLISH
        const sent = await as(X, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'late' }).expect(201);
        await doomed.nodes[0]!.kill();
        const started = Date.now();
        let got: string[] = [];
        while (got.length === 0 && Date.now() - started < 30_000) {
          got = (await pollEvents(Y, bob, 2)).filter((e) => e.type === 'message').map((e) => e.message.id);
        }
        expect(got).to.deep.equal([sent.body.message.id]);
      } finally {
        await doomed.close();
      }
    });

    it('a group: status is the least advanced member, with delivered_to and read_by', async () => {
      const alice = await register(A, 'alice');
      const bob = await register(B, 'bob');
      const carol = await register(A, 'carol');
      const group = (await as(A, alice).post('/api/conversations').send({ title: 'Trip', members: [bob.name, carol.name] }).expect(201))
        .body.conversation;
      expect(group.kind).to.equal('group');
      await accept(B, bob, group.id);
      await accept(A, carol, group.id);
      for (const u of [alice, bob, carol]) await pollEvents(A, u);
      const sent = await as(A, alice).post(`/api/conversations/${group.id}/messages`).send({ text: 'hello all' }).expect(201);
      await pollEvents(B, bob);
      await pollEvents(B, bob); // bob's device acknowledges
      const r1 = await waitForEvent(A, alice, (e) => e.type === 'receipt');
      expect(r1).to.include({ user: bob.name, status: 'delivered' });
      let history = await as(B, alice).get(`/api/conversations/${group.id}/messages`).expect(200);
      expect(history.body.messages[0]).to.deep.include({ status: 'sent', delivered_to: [bob.name], read_by: [] });
      await pollEvents(A, carol);
      await pollEvents(A, carol);
      await as(A, carol).post(`/api/conversations/${group.id}/read`).send({ up_to: sent.body.message.seq }).expect(204);
      await as(B, bob).post(`/api/conversations/${group.id}/read`).send({ up_to: sent.body.message.seq }).expect(204);
      history = await as(B, alice).get(`/api/conversations/${group.id}/messages`).expect(200);
      expect(history.body.messages[0]).to.deep.include({ status: 'read', read_by: [bob.name, carol.name].sort() });
    });
  });
}
