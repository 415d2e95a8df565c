import { expect } from 'chai';
import { accept, as, pollEvents, register, type TestUser } from '../support/client.js';
import { requireServices } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

/**
 * Who runs a group and what its members may read: the owner and admins add members, a removed
 * member added back reads nothing from the time they were away (unless the group shows newcomers
 * everything), and an old stream entry replayed after a removal shows nothing of the group's
 * current title or members.
 */
for (const backend of ['embedded', 'real'] as const) {
  describe(`group membership and what members read (${backend})`, function () {
    this.timeout(60_000);
    let stack: Stack;
    let url: string;
    before(async function () {
      if (backend === 'real') await requireServices(this);
      stack = await startStack({ backend });
      url = stack.nodes[0]!.url;
    });
    after(async () => stack?.close());

    const send = async (u: TestUser, conv: string, text: string) =>
      (await as(url, u).post(`/api/conversations/${conv}/messages`).send({ text }).expect(201)).body.message as { seq: number };
    const history = async (u: TestUser, conv: string) =>
      ((await as(url, u).get(`/api/conversations/${conv}/messages`).expect(200)).body.messages as Array<{ text: string }>).map((m) => m.text);

    async function group(history?: 'joined' | 'all') {
      const owner = await register(url, 'own');
      const ann = await register(url, 'ann');
      const bob = await register(url, 'bob');
      const res = await as(url, owner)
        .post('/api/conversations')
        .send({ title: 'team', members: [ann.name, bob.name], ...(history ? { history } : {}) })
        .expect(201);
      return { owner, ann, bob, conv: res.body.conversation as { id: string; owner: string; admins: string[]; history: string } };
    }

    it('lets the owner and admins add members, not plain members; the owner makes admins', async () => {
      const { owner, ann, bob, conv } = await group();
      expect(conv.owner).to.equal(owner.name);
      expect(conv.admins).to.deep.equal([]);
      const carl = await register(url, 'carl');
      const refused = await as(url, ann).post(`/api/conversations/${conv.id}/members`).send({ name: carl.name });
      expect(refused.status).to.equal(403);
      expect(refused.body.error.code).to.equal('forbidden');
      // only the owner makes admins
      await as(url, bob).post(`/api/conversations/${conv.id}/admins`).send({ name: ann.name }).expect(403);
      await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: ann.name }).expect(204);
      await as(url, ann).post(`/api/conversations/${conv.id}/members`).send({ name: carl.name }).expect(204);
      const listed = (await as(url, carl).get('/api/conversations').expect(200)).body.conversations as Array<{ id: string; members: string[] }>;
      expect(listed.find((c) => c.id === conv.id)!.members).to.include(carl.name);
      // an admin removes plain members, not other admins or the owner
      await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: bob.name }).expect(204);
      await as(url, ann).delete(`/api/conversations/${conv.id}/members/${bob.name}`).expect(403);
      await as(url, ann).delete(`/api/conversations/${conv.id}/members/${owner.name}`).expect(403);
      await as(url, ann).delete(`/api/conversations/${conv.id}/members/${carl.name}`).expect(204);
      // demoted, ann can no longer add
      await as(url, owner).delete(`/api/conversations/${conv.id}/admins/${ann.name}`).expect(204);
      await as(url, ann).post(`/api/conversations/${conv.id}/members`).send({ name: carl.name }).expect(403);
      const events = await pollEvents(url, bob);
      const last = events.filter((e) => e.type === 'conversation').at(-1)!;
      expect(last.change).to.equal('role_changed');
      expect(last.conversation.admins).to.deep.equal([bob.name]);
    });

    it('a member removed and added back reads nothing from before, nor from the time away', async () => {
      const { owner, bob, conv } = await group();
      await send(owner, conv.id, 'before the removal');
      await as(url, owner).delete(`/api/conversations/${conv.id}/members/${bob.name}`).expect(204);
      await send(owner, conv.id, 'while bob is away');
      await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(403);
      await as(url, owner).post(`/api/conversations/${conv.id}/members`).send({ name: bob.name }).expect(204);
      expect(await history(bob, conv.id)).to.deep.equal([]);
      const listed = (await as(url, bob).get('/api/conversations').expect(200)).body.conversations as Array<Record<string, any>>;
      const mine = listed.find((c) => c.id === conv.id)!;
      expect(mine.last_message).to.equal(null);
      expect(mine.unread).to.equal(0);
      await send(owner, conv.id, 'welcome back');
      expect(await history(bob, conv.id)).to.deep.equal(['welcome back']);
      // the others still read everything
      expect(await history(owner, conv.id)).to.deep.equal(['before the removal', 'while bob is away', 'welcome back']);
    });

    it('a member added back cannot download a file sent before, which the others still can', async () => {
      const { owner, ann, bob, conv } = await group();
      const up = await as(url, owner).post(`/api/conversations/${conv.id}/files`).attach('file', Buffer.from('minutes of the meeting'), 'minutes.txt').expect(201);
      const fileUrl = up.body.message.attachment.url as string;
      await as(url, bob).get(fileUrl).expect(200);
      await as(url, owner).delete(`/api/conversations/${conv.id}/members/${bob.name}`).expect(204);
      await as(url, owner).post(`/api/conversations/${conv.id}/members`).send({ name: bob.name }).expect(204);
      await as(url, bob).get(fileUrl).expect(404);
      const got = await as(url, ann)
        .get(fileUrl)
        .buffer(true)
        .parse((res, cb) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => cb(null, Buffer.concat(chunks)));
        })
        .expect(200);
      expect((got.body as Buffer).toString()).to.equal('minutes of the meeting');
    });

    it('creating a group with unknown members does not say which names exist', async () => {
      const owner = await register(url, 'own');
      const known = await register(url, 'ann');
      const res = await as(url, owner).post('/api/conversations').send({ title: 't', members: [known.name, 'nobody-here-1', 'nobody-here-2'] }).expect(404);
      expect(JSON.stringify(res.body)).to.not.match(/nobody-here|ann/);
    });

    it('a group set to show newcomers everything does; only its owner changes that', async () => {
      const { owner, ann, conv } = await group();
      await send(owner, conv.id, 'old news');
      await as(url, ann).post(`/api/conversations/${conv.id}/settings`).send({ history: 'all' }).expect(403);
      const bad = await as(url, owner).post(`/api/conversations/${conv.id}/settings`).send({ history: 'some' }).expect(400);
      expect(bad.body.error.code).to.equal('bad_history');
      const changed = await as(url, owner).post(`/api/conversations/${conv.id}/settings`).send({ history: 'all' }).expect(200);
      expect(changed.body.conversation.history).to.equal('all');
      const dora = await register(url, 'dora');
      await as(url, owner).post(`/api/conversations/${conv.id}/members`).send({ name: dora.name }).expect(204);
      expect(await history(dora, conv.id)).to.deep.equal(['old news']);
      // and one created so shows it from the start
      const open = await group('all');
      expect(open.conv.history).to.equal('all');
    });

    it('a newcomer does not hold back the status of messages sent before they joined', async () => {
      const { owner, ann, bob, conv } = await group();
      const m = await send(owner, conv.id, 'read by all who were there');
      for (const u of [ann, bob]) await accept(url, u, conv.id);
      for (const u of [ann, bob]) await as(url, u).post(`/api/conversations/${conv.id}/read`).send({ up_to: m.seq }).expect(204);
      const erin = await register(url, 'erin');
      await as(url, owner).post(`/api/conversations/${conv.id}/members`).send({ name: erin.name }).expect(204);
      const mine = (await as(url, owner).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages as Array<Record<string, any>>;
      expect(mine[0]!.status).to.equal('read');
      expect(mine[0]!.read_by).to.have.members([ann.name, bob.name]);
    });

    it('an old stream entry replayed after a removal shows nothing of the group as it is now', async () => {
      const { owner, bob, conv } = await group();
      await as(url, owner).delete(`/api/conversations/${conv.id}/members/${bob.name}`).expect(204);
      await as(url, owner).post(`/api/conversations/${conv.id}/settings`).send({ history: 'all' }).expect(200);
      // bob replays his whole stream from its start (a cursor he kept from long ago)
      const replay = (await as(url, bob).get('/api/events?since=1-0&wait=0').expect(200)).body.events as Array<Record<string, any>>;
      const about = replay.filter((e) => e.type === 'conversation' && e.conversation.id === conv.id);
      expect(about.map((e) => e.change)).to.deep.equal(['created', 'member_removed']);
      for (const e of about) expect(e.conversation).to.deep.equal({ id: conv.id, kind: 'group', title: null, members: [] });
    });
  });
}
