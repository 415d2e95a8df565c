import { expect } from 'chai';
import { as, pollEvents, register, waitForEvent, type TestUser } from '../support/client.js';
import { flushPresence, useStack } from '../support/stack.js';

/**
 * Group changes across nodes (issue 13, C): what one node does to a group reaches members whose
 * polls land on the other, in order, from their streams — a parked poll wakes, an offline device
 * catches up.
 */
for (const backend of ['real', 'embedded'] as const) {
  describe(`groups across two nodes (${backend})`, function () {
    this.timeout(60_000);
    const suite = useStack({ backend, nodes: 2 });
    let A: string;
    let B: string;
    before(() => {
      [A, B] = [suite.url(0), suite.url(1)];
    });

    /** own on node A, ann and bob on node B, in a group; every stream read once. */
    async function group() {
      const owner = await register(A, 'own');
      const ann = await register(B, 'ann');
      const bob = await register(B, 'bob');
      const conv = (await as(A, owner).post('/api/conversations').send({ title: 'team', members: [ann.name, bob.name] }).expect(201)).body.conversation;
      await flushPresence(suite.stack);
      for (const u of [owner, ann, bob]) await pollEvents(B, u);
      return { owner, ann, bob, conv: conv as { id: string } };
    }
    const conversationEvents = async (url: string, u: TestUser) => (await pollEvents(url, u)).filter((e) => e.type === 'conversation');

    it("bob's poll parked on node B wakes when the owner leaves on node A; ownership passed on", async () => {
      const { owner, ann, bob, conv } = await group();
      await as(A, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: bob.name }).expect(204);
      await waitForEvent(B, bob, (e) => e.change === 'role_changed');
      const started = Date.now();
      const parked = pollEvents(B, bob, 20);
      await new Promise((r) => setTimeout(r, 300)); // let it park
      await as(A, owner).post(`/api/conversations/${conv.id}/leave`).expect(204);
      let events = (await parked).filter((e) => e.type === 'conversation');
      expect(Date.now() - started).to.be.below(5000); // woken, not timed out after 20 s
      // the wake-up may answer with the first entry only: the rest follows from the stream
      if (events.length < 2) events = [...events, ...(await conversationEvents(B, bob))];
      expect(events.map((e) => e.change)).to.deep.equal(['member_left', 'owner_changed']);
      expect(events[1]!.conversation.owner).to.equal(bob.name);
      // ann, offline meanwhile, gets every change in order on the other node (each entry shows
      // the group as it is when read, as every conversation event does)
      const annSaw = await conversationEvents(A, ann);
      expect(annSaw.map((e) => e.change)).to.deep.equal(['role_changed', 'member_left', 'owner_changed']);
      expect(annSaw.at(-1)!.conversation.owner).to.equal(bob.name);
      expect(annSaw.at(-1)!.conversation.members).to.not.include(owner.name);
      // and the new owner runs the group from either node
      await as(B, bob).post(`/api/conversations/${conv.id}/settings`).send({ who_can_add: 'members' }).expect(200);
      const settled = await waitForEvent(A, ann, (e) => e.change === 'settings_changed');
      expect(settled.conversation.who_can_add).to.equal('members');
    });

    it('a transfer on node A and a rename on node B reach every member in order on the other node', async () => {
      const { owner, ann, bob, conv } = await group();
      await as(A, owner).post(`/api/conversations/${conv.id}/owner`).send({ name: ann.name }).expect(204);
      await as(B, ann).post(`/api/conversations/${conv.id}/settings`).send({ title: 'new name' }).expect(200);
      const seen = await conversationEvents(A, bob);
      expect(seen.map((e) => e.change)).to.deep.equal(['owner_changed', 'renamed']);
      expect(seen[0]!.conversation).to.include({ owner: ann.name });
      expect(seen[0]!.conversation.admins).to.deep.equal([owner.name]);
      expect(seen[1]!.conversation.title).to.equal('new name');
      const ownerSaw = await conversationEvents(B, owner);
      expect(ownerSaw.map((e) => e.change)).to.deep.equal(['owner_changed', 'renamed']);
    });

    it('a link made on node A is joined on node B; the members on A see the newcomer', async () => {
      const { owner, conv } = await group();
      const invite = (await as(A, owner).post(`/api/conversations/${conv.id}/invites`).send({ expires_in: 600 }).expect(201)).body.invite;
      const eve = await register(B, 'eve');
      expect((await as(B, eve).get(`/api/invites/${invite.code}`).expect(200)).body.invite.members).to.equal(3);
      await as(B, eve).post(`/api/invites/${invite.code}/join`).expect(200);
      const added = await waitForEvent(A, owner, (e) => e.change === 'member_added');
      expect(added.conversation.members).to.include(eve.name);
      // revoked on node B, gone on node A at once
      await as(B, eve).post(`/api/conversations/${conv.id}/invites`).send({}).expect(403);
      await as(B, owner).delete(`/api/conversations/${conv.id}/invites/${invite.code}`).expect(204);
      const late = await register(A, 'late');
      await as(A, late).post(`/api/invites/${invite.code}/join`).expect(410);
    });
  });
}
