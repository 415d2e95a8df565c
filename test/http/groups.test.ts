import { expect } from 'chai';
import supertest from 'supertest';
import { as, pollEvents, register, type TestUser } from '../support/client.js';
import { useStack } from '../support/stack.js';

type Conv = { id: string; title: string | null; members: string[]; owner?: string | null; admins?: string[]; who_can_add?: string; history?: string };
type Ev = Record<string, any>;

/**
 * Groups their members run (issue 13, C): renaming and settings, who may add members, leaving,
 * ownership passing on and transferred, and invite links (expiry, revocation, a full group).
 */
for (const backend of ['embedded', 'real'] as const) {
  describe(`groups: settings, leaving, ownership, invite links (${backend})`, function () {
    this.timeout(60_000);
    const suite = useStack({ backend });
    let url: string;
    before(() => {
      url = suite.url();
    });

    /** own (owner), ann and bob; the group as its creation answered, every stream read once. */
    async function group(extra: TestUser[] = []) {
      const owner = await register(url, 'own');
      const ann = await register(url, 'ann');
      const bob = await register(url, 'bob');
      const res = await as(url, owner)
        .post('/api/conversations')
        .send({ title: 'team', members: [ann.name, bob.name, ...extra.map((u) => u.name)] })
        .expect(201);
      for (const u of [owner, ann, bob, ...extra]) await pollEvents(url, u);
      return { owner, ann, bob, conv: res.body.conversation as Conv };
    }
    const settings = (u: TestUser, id: string) => as(url, u).post(`/api/conversations/${id}/settings`);
    const changes = async (u: TestUser) => (await pollEvents(url, u)).filter((e) => e.type === 'conversation');
    const viewOf = async (u: TestUser, id: string) =>
      ((await as(url, u).get('/api/conversations').expect(200)).body.conversations as Conv[]).find((c) => c.id === id);
    const errorOf = (res: supertest.Response) => (res.body as { error: { code: string } }).error.code;

    describe('renaming and settings', () => {
      it('the owner and admins rename a group, a plain member cannot; every member sees `renamed`', async () => {
        const { owner, ann, bob, conv } = await group();
        expect(conv.who_can_add).to.equal('admins');
        const refused = await settings(bob, conv.id).send({ title: 'mine now' }).expect(403);
        expect(errorOf(refused)).to.equal('forbidden');
        const renamed = await settings(owner, conv.id).send({ title: '  launch crew  ' }).expect(200);
        expect(renamed.body.conversation.title).to.equal('launch crew');
        await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: ann.name }).expect(204);
        // an admin renames, with a form body too
        await settings(ann, conv.id).type('form').send('title=night+shift').expect(200);
        const seen = await changes(bob);
        expect(seen.map((e) => e.change)).to.deep.equal(['renamed', 'role_changed', 'renamed']);
        expect(seen.at(-1)!.conversation.title).to.equal('night shift');
        expect((await viewOf(bob, conv.id))!.title).to.equal('night shift');
        // renaming to the same title changes nothing and tells no one
        await settings(ann, conv.id).send({ title: 'night shift' }).expect(200);
        expect(await changes(bob)).to.deep.equal([]);
      });

      it('only the owner changes who may add members; an admin may not, even beside a title', async () => {
        const { owner, ann, bob, conv } = await group();
        await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: ann.name }).expect(204);
        await settings(ann, conv.id).send({ who_can_add: 'members' }).expect(403);
        await settings(ann, conv.id).send({ title: 'sneaky', who_can_add: 'members' }).expect(403);
        await settings(ann, conv.id).send({ history: 'all' }).expect(403);
        expect((await viewOf(owner, conv.id))!.title).to.equal('team'); // nothing of the refused request happened
        await pollEvents(url, bob);
        const changed = await settings(owner, conv.id).type('form').send('who_can_add=members').expect(200);
        expect(changed.body.conversation.who_can_add).to.equal('members');
        const seen = await changes(bob);
        expect(seen.map((e) => e.change)).to.deep.equal(['settings_changed']);
        expect(seen[0]!.conversation.who_can_add).to.equal('members');
        expect((await viewOf(bob, conv.id))!.who_can_add).to.equal('members');
      });

      it('answers bad settings with a 400 naming the field', async () => {
        const { owner, conv } = await group();
        const cases: Array<[Record<string, unknown> | string, string]> = [
          [{}, 'bad_settings'],
          [{ title: '' }, 'bad_title'],
          [{ title: '   ' }, 'bad_title'],
          [{ title: 'x'.repeat(101) }, 'bad_title'],
          [{ title: 42 }, 'bad_title'],
          [{ who_can_add: 'everyone' }, 'bad_who_can_add'],
          [{ history: 'some' }, 'bad_history'],
          ['who_can_add=', 'bad_who_can_add'],
        ];
        for (const [body, code] of cases) {
          const req = settings(owner, conv.id);
          const res = await (typeof body === 'string' ? req.type('form').send(body) : req.send(body));
          expect(res.status, JSON.stringify(body)).to.equal(400);
          expect(errorOf(res), JSON.stringify(body)).to.equal(code);
        }
        const direct = (await as(url, owner).post('/api/conversations').send({ with: (await register(url, 'dan')).name }).expect(201)).body.conversation;
        expect(errorOf(await settings(owner, direct.id).send({ title: 'us' }).expect(400))).to.equal('not_a_group');
        const stranger = await register(url, 'eve');
        await settings(stranger, conv.id).send({ title: 'x' }).expect(403);
        await settings(owner, 'g-no-such-group').send({ title: 'x' }).expect(404);
      });
    });

    describe('who may add members', () => {
      it('plain members add members once the owner lets them, and no longer once the owner stops', async () => {
        const { owner, bob, conv } = await group();
        const carl = await register(url, 'carl');
        const dan = await register(url, 'dan');
        expect(errorOf(await as(url, bob).post(`/api/conversations/${conv.id}/members`).send({ name: carl.name }).expect(403))).to.equal('forbidden');
        await settings(owner, conv.id).send({ who_can_add: 'members' }).expect(200);
        await as(url, bob).post(`/api/conversations/${conv.id}/members`).type('form').send(`name=${carl.name}`).expect(204);
        expect((await viewOf(carl, conv.id))!.members).to.include(carl.name);
        await settings(owner, conv.id).send({ who_can_add: 'admins' }).expect(200);
        await as(url, bob).post(`/api/conversations/${conv.id}/members`).send({ name: dan.name }).expect(403);
        // adding is still not removing: a plain member removes no one
        await as(url, bob).delete(`/api/conversations/${conv.id}/members/${carl.name}`).expect(403);
      });
    });

    describe('leaving', () => {
      it('a member leaves: the others see `member_left`, the leaver reads nothing more', async () => {
        const { owner, ann, bob, conv } = await group();
        await as(url, bob).post(`/api/conversations/${conv.id}/leave`).expect(204);
        const seen = await changes(owner);
        expect(seen.map((e) => e.change)).to.deep.equal(['member_left']);
        expect(seen[0]!.conversation.members).to.deep.equal([ann.name, owner.name].sort());
        expect(seen[0]!.conversation.owner).to.equal(owner.name);
        const mine = await changes(bob);
        expect(mine.map((e) => [e.change, e.conversation.members])).to.deep.equal([['member_left', []]]);
        await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(403);
        await as(url, bob).post(`/api/conversations/${conv.id}/leave`).expect(403);
        expect(await viewOf(bob, conv.id)).to.equal(undefined);
      });

      it('when the owner leaves, the longest-standing admin becomes the owner, not an earlier plain member', async () => {
        const { owner, ann, bob, conv } = await group();
        const carl = await register(url, 'carl');
        await as(url, owner).post(`/api/conversations/${conv.id}/members`).send({ name: carl.name }).expect(204);
        await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: carl.name }).expect(204);
        await pollEvents(url, ann);
        await as(url, owner).post(`/api/conversations/${conv.id}/leave`).expect(204);
        const seen = await changes(ann);
        expect(seen.map((e) => e.change)).to.deep.equal(['member_left', 'owner_changed']);
        expect(seen[1]!.conversation.owner).to.equal(carl.name);
        expect(seen[1]!.conversation.admins).to.deep.equal([]);
        // the new owner runs the group
        await settings(carl, conv.id).send({ who_can_add: 'members' }).expect(200);
        await as(url, carl).delete(`/api/conversations/${conv.id}/members/${bob.name}`).expect(204);
      });

      it('without admins, the longest-standing member becomes the owner (by when they joined, not who registered first)', async () => {
        const early = await register(url, 'early'); // registered before bob, joins after him
        const owner = await register(url, 'own');
        const bob = await register(url, 'bob');
        const conv = (await as(url, owner).post('/api/conversations').send({ title: 't', members: [bob.name] }).expect(201)).body.conversation as Conv;
        await as(url, owner).post(`/api/conversations/${conv.id}/members`).send({ name: early.name }).expect(204);
        // the existing route works the same: the owner removing themselves is leaving
        await as(url, owner).delete(`/api/conversations/${conv.id}/members/${owner.name}`).expect(204);
        const seen = (await pollEvents(url, early)).filter((e) => e.type === 'conversation');
        expect(seen.map((e) => e.change)).to.deep.equal(['member_added', 'member_left', 'owner_changed']);
        expect(seen.at(-1)!.conversation.owner).to.equal(bob.name);
        expect((await viewOf(early, conv.id))!.owner).to.equal(bob.name);
      });

      it('a group whose last member leaves stays empty: no one reads it, its links are gone', async () => {
        const owner = await register(url, 'own');
        const bob = await register(url, 'bob');
        const conv = (await as(url, owner).post('/api/conversations').send({ title: 't', members: [bob.name] }).expect(201)).body.conversation as Conv;
        await as(url, owner).post(`/api/conversations/${conv.id}/messages`).send({ text: 'hello' }).expect(201);
        const invite = (await as(url, owner).post(`/api/conversations/${conv.id}/invites`).send({}).expect(201)).body.invite;
        await as(url, owner).post(`/api/conversations/${conv.id}/leave`).expect(204);
        await as(url, bob).post(`/api/conversations/${conv.id}/leave`).expect(204);
        const rows = await suite.stack.db.query<{ n: number }>('SELECT count(*)::int AS n FROM members WHERE conversation_id = $1', [conv.id]);
        expect(rows[0]!.n).to.equal(0);
        for (const u of [owner, bob]) await as(url, u).get(`/api/conversations/${conv.id}/messages`).expect(403);
        const stranger = await register(url, 'eve');
        expect(errorOf(await as(url, stranger).post(`/api/invites/${invite.code}/join`).expect(410))).to.equal('invite_gone');
      });

      it('the owner declining the group is leaving it: ownership passes on', async () => {
        const { owner, ann, conv } = await group();
        await as(url, owner).post(`/api/conversations/${conv.id}/decline`).expect(204);
        const seen = await changes(ann);
        expect(seen.map((e) => e.change)).to.deep.equal(['member_left', 'owner_changed']);
        expect(seen[1]!.conversation.owner).to.equal(ann.name); // ann and bob joined together; ann registered first
      });

      it('a direct conversation is declined, not left; unknown groups are 404', async () => {
        const owner = await register(url, 'own');
        const bob = await register(url, 'bob');
        const direct = (await as(url, owner).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
        expect(errorOf(await as(url, owner).post(`/api/conversations/${direct.id}/leave`).expect(400))).to.equal('not_a_group');
        await as(url, owner).post('/api/conversations/g-nothing-here/leave').expect(404);
      });
    });

    describe('transferring ownership', () => {
      it('the owner hands the group to a member and becomes an admin; everyone sees `owner_changed`', async () => {
        const { owner, ann, bob, conv } = await group();
        await as(url, owner).post(`/api/conversations/${conv.id}/owner`).type('form').send(`name=${bob.name}`).expect(204);
        const seen = await changes(ann);
        expect(seen.map((e) => e.change)).to.deep.equal(['owner_changed']);
        expect(seen[0]!.conversation.owner).to.equal(bob.name);
        expect(seen[0]!.conversation.admins).to.deep.equal([owner.name]);
        // the old owner is an admin now: renames, but neither transfers nor changes settings
        await settings(owner, conv.id).send({ title: 'still here' }).expect(200);
        await settings(owner, conv.id).send({ who_can_add: 'members' }).expect(403);
        await as(url, owner).post(`/api/conversations/${conv.id}/owner`).send({ name: ann.name }).expect(403);
        await settings(bob, conv.id).send({ who_can_add: 'members' }).expect(200);
      });

      it('admins and members cannot transfer; bad names are refused', async () => {
        const { owner, ann, bob, conv } = await group();
        await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: ann.name }).expect(204);
        expect(errorOf(await as(url, ann).post(`/api/conversations/${conv.id}/owner`).send({ name: ann.name }).expect(403))).to.equal('forbidden');
        await as(url, bob).post(`/api/conversations/${conv.id}/owner`).send({ name: bob.name }).expect(403);
        const stranger = await register(url, 'eve');
        expect(errorOf(await as(url, owner).post(`/api/conversations/${conv.id}/owner`).send({ name: stranger.name }).expect(404))).to.equal('not_found');
        expect(errorOf(await as(url, owner).post(`/api/conversations/${conv.id}/owner`).send({ name: owner.name }).expect(400))).to.equal('bad_name');
        expect(errorOf(await as(url, owner).post(`/api/conversations/${conv.id}/owner`).send({}).expect(400))).to.equal('bad_name');
        expect(errorOf(await as(url, owner).post(`/api/conversations/${conv.id}/owner`).send({ name: ['x'] }).expect(400))).to.equal('bad_name');
        expect((await viewOf(ann, conv.id))!.owner).to.equal(owner.name);
      });
    });

    it('renames, joins, leaves, a transfer, sends and reads at once on one group: no deadlock, one owner', async () => {
      const others = await Promise.all([0, 1, 2, 3].map(() => register(url, 'm')));
      const { owner, ann, bob, conv } = await group(others);
      await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: ann.name }).expect(204);
      const invite = (await as(url, owner).post(`/api/conversations/${conv.id}/invites`).send({}).expect(201)).body.invite;
      const joiners = await Promise.all([0, 1, 2].map(() => register(url, 'j')));
      const before = suite.stack.nodes[0]!.deps.db.deadlocks;
      const results = await Promise.all([
        as(url, owner).post(`/api/conversations/${conv.id}/owner`).send({ name: bob.name }),
        as(url, ann).post(`/api/conversations/${conv.id}/settings`).send({ title: 'busy' }),
        as(url, owner).post(`/api/conversations/${conv.id}/leave`),
        ...joiners.map((u) => as(url, u).post(`/api/invites/${invite.code}/join`)),
        ...others.map((u, i) => (i % 2 ? as(url, u).post(`/api/conversations/${conv.id}/leave`) : as(url, u).post(`/api/conversations/${conv.id}/messages`).send({ text: `m${i}` }))),
        as(url, bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'bob' }),
        as(url, bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: 1 }),
      ]);
      for (const r of results) expect(r.status, JSON.stringify(r.body)).to.be.below(500);
      expect(suite.stack.nodes[0]!.deps.db.deadlocks - before).to.equal(0);
      const roles = await suite.stack.db.query<{ role: string }>("SELECT role FROM members WHERE conversation_id = $1 AND role = 'owner'", [conv.id]);
      expect(roles).to.have.length(1);
    });

    describe('invite links', () => {
      const invites = (u: TestUser, id: string) => as(url, u).post(`/api/conversations/${id}/invites`);

      it('the owner makes a link; a stranger previews it and joins, which the members see', async () => {
        const { owner, ann, conv } = await group();
        const before = Date.now();
        const res = await invites(owner, conv.id).send({}).expect(201);
        const invite = res.body.invite as { code: string; url: string; expires_at: string; created_by: string };
        expect(invite.code).to.match(/^[A-Za-z0-9_-]{24}$/);
        expect(invite.url).to.equal(`${url}/join/${invite.code}`);
        expect(invite.created_by).to.equal(owner.name);
        const days = (Date.parse(invite.expires_at) - before) / 86_400_000;
        expect(days).to.be.within(6.99, 7.01);
        const eve = await register(url, 'eve');
        const preview = await as(url, eve).get(`/api/invites/${invite.code}`).expect(200);
        expect(preview.body.invite).to.deep.equal({ title: 'team', members: 3, expires_at: invite.expires_at });
        // previewing is not joining
        await as(url, eve).get(`/api/conversations/${conv.id}/messages`).expect(403);
        const joined = await as(url, eve).post(`/api/invites/${invite.code}/join`).expect(200);
        expect(joined.body.conversation.id).to.equal(conv.id);
        expect(joined.body.conversation.members).to.include(eve.name);
        const seen = await changes(ann);
        expect(seen.map((e) => e.change)).to.deep.equal(['member_added']);
        expect(seen[0]!.conversation.members).to.include(eve.name);
        // joining is consent: eve's list shows it accepted, and she sends at once
        expect((await viewOf(eve, conv.id)) as unknown as { accepted: boolean }).to.include({ accepted: true });
        await as(url, eve).post(`/api/conversations/${conv.id}/messages`).send({ text: 'hi all' }).expect(201);
        // joining again changes nothing
        await as(url, eve).post(`/api/invites/${invite.code}/join`).expect(200);
        expect((await changes(ann)).filter((e) => e.change === 'member_added')).to.deep.equal([]);
        // signed in only
        await supertest(url).get(`/api/invites/${invite.code}`).expect(401);
        await supertest(url).post(`/api/invites/${invite.code}/join`).expect(401);
      });

      it('only those who may add members make, list and revoke links; the code is not stored in the clear', async () => {
        const { owner, ann, bob, conv } = await group();
        expect(errorOf(await invites(bob, conv.id).send({}).expect(403))).to.equal('forbidden');
        await as(url, bob).get(`/api/conversations/${conv.id}/invites`).expect(403);
        await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: ann.name }).expect(204);
        const a = (await invites(ann, conv.id).type('form').send('expires_in=3600').expect(201)).body.invite;
        const b = (await invites(owner, conv.id).send({ expires_in: 60 }).expect(201)).body.invite;
        const listed = (await as(url, owner).get(`/api/conversations/${conv.id}/invites`).expect(200)).body.invites as Array<Record<string, string>>;
        expect(listed.map((i) => [i['code'], i['created_by']])).to.deep.equal([
          [b.code, owner.name],
          [a.code, ann.name],
        ]);
        expect(listed[1]).to.deep.equal(a);
        // a plain member neither lists nor revokes them; a stranger learns nothing either
        await as(url, bob).delete(`/api/conversations/${conv.id}/invites/${a.code}`).expect(403);
        const eve = await register(url, 'eve');
        await as(url, eve).get(`/api/conversations/${conv.id}/invites`).expect(403);
        // once members may add, members manage links too
        await settings(owner, conv.id).send({ who_can_add: 'members' }).expect(200);
        expect((await as(url, bob).get(`/api/conversations/${conv.id}/invites`).expect(200)).body.invites).to.have.length(2);
        const rows = await suite.stack.db.query<Record<string, unknown>>('SELECT * FROM invites WHERE conversation_id = $1', [conv.id]);
        expect(rows).to.have.length(2);
        const dump = JSON.stringify(rows.map((r) => Object.values(r).map((v) => (v instanceof Uint8Array ? Buffer.from(v).toString('latin1') : String(v)))));
        for (const code of [a.code, b.code]) expect(dump).to.not.include(code);
      });

      it('a revoked link answers 410 invite_gone, to preview and join, and leaves the list', async () => {
        const { owner, conv } = await group();
        const keep = (await invites(owner, conv.id).send({}).expect(201)).body.invite;
        const gone = (await invites(owner, conv.id).send({}).expect(201)).body.invite;
        await as(url, owner).delete(`/api/conversations/${conv.id}/invites/${gone.code}`).expect(204);
        const eve = await register(url, 'eve');
        expect(errorOf(await as(url, eve).get(`/api/invites/${gone.code}`).expect(410))).to.equal('invite_gone');
        expect(errorOf(await as(url, eve).post(`/api/invites/${gone.code}/join`).expect(410))).to.equal('invite_gone');
        await as(url, eve).get(`/api/conversations/${conv.id}/messages`).expect(403);
        const listed = (await as(url, owner).get(`/api/conversations/${conv.id}/invites`).expect(200)).body.invites as Array<{ code: string }>;
        expect(listed.map((i) => i.code)).to.deep.equal([keep.code]);
        // revoking again is fine; by the form-friendly route too
        await as(url, owner).post(`/api/conversations/${conv.id}/invites/${gone.code}/revoke`).expect(204);
        await as(url, owner).delete(`/api/conversations/${conv.id}/invites/${'x'.repeat(24)}`).expect(404);
        await as(url, owner).delete(`/api/conversations/${conv.id}/invites/short`).expect(404);
        // a code of another group is not this group's to revoke
        const other = await group();
        const theirs = (await invites(other.owner, other.conv.id).send({}).expect(201)).body.invite;
        await as(url, owner).delete(`/api/conversations/${conv.id}/invites/${theirs.code}`).expect(404);
        await as(url, eve).get(`/api/invites/${theirs.code}`).expect(200);
      });

      it('an expired link answers 410 invite_gone and is no longer listed', async () => {
        const { owner, conv } = await group();
        const invite = (await invites(owner, conv.id).send({ expires_in: 1 }).expect(201)).body.invite;
        const eve = await register(url, 'eve');
        await as(url, eve).get(`/api/invites/${invite.code}`).expect(200);
        // the clock moves on: the link's expiry is now in the past (by the database's clock, as the check)
        await suite.stack.db.query("UPDATE invites SET expires_at = now() - interval '1 millisecond' WHERE conversation_id = $1", [conv.id]);
        expect(errorOf(await as(url, eve).get(`/api/invites/${invite.code}`).expect(410))).to.equal('invite_gone');
        expect(errorOf(await as(url, eve).post(`/api/invites/${invite.code}/join`).expect(410))).to.equal('invite_gone');
        expect((await as(url, owner).get(`/api/conversations/${conv.id}/invites`).expect(200)).body.invites).to.deep.equal([]);
      });

      it('a link stops working once its creator may no longer add members', async () => {
        const { owner, ann, conv } = await group();
        await as(url, owner).post(`/api/conversations/${conv.id}/admins`).send({ name: ann.name }).expect(204);
        const byAnn = (await invites(ann, conv.id).send({}).expect(201)).body.invite;
        const eve = await register(url, 'eve');
        await as(url, eve).get(`/api/invites/${byAnn.code}`).expect(200);
        await as(url, owner).delete(`/api/conversations/${conv.id}/admins/${ann.name}`).expect(204);
        await as(url, eve).post(`/api/invites/${byAnn.code}/join`).expect(410);
        // the owner letting every member add brings it back; ann leaving ends it for good
        await settings(owner, conv.id).send({ who_can_add: 'members' }).expect(200);
        await as(url, eve).get(`/api/invites/${byAnn.code}`).expect(200);
        await as(url, ann).post(`/api/conversations/${conv.id}/leave`).expect(204);
        await as(url, eve).post(`/api/invites/${byAnn.code}/join`).expect(410);
      });

      it('joining a full group answers 409 group_full', async () => {
        const { owner, conv } = await group();
        // fill it to 500 members without registering 497 users through scrypt
        await suite.stack.db.query(
          `WITH u AS (INSERT INTO users (name, pass_hash) SELECT 'filler-' || $2 || '-' || g, 'x' FROM generate_series(1, 497) g RETURNING id)
           INSERT INTO members (conversation_id, user_id) SELECT $1, id FROM u`,
          [conv.id, conv.id.slice(1, 9).toLowerCase().replace(/[^a-z0-9]/g, 'x')],
        );
        const invite = (await invites(owner, conv.id).send({}).expect(201)).body.invite;
        const eve = await register(url, 'eve');
        expect((await as(url, eve).get(`/api/invites/${invite.code}`).expect(200)).body.invite.members).to.equal(500);
        expect(errorOf(await as(url, eve).post(`/api/invites/${invite.code}/join`).expect(409))).to.equal('group_full');
        expect(errorOf(await as(url, owner).post(`/api/conversations/${conv.id}/members`).send({ name: eve.name }).expect(409))).to.equal('group_full');
        await as(url, eve).get(`/api/conversations/${conv.id}/messages`).expect(403);
        // one place freed, two take it at once: exactly one gets in (counted under the group's lock)
        await as(url, owner).delete(`/api/conversations/${conv.id}/members/${(await viewOf(owner, conv.id))!.members.find((n) => n.startsWith('filler-'))}`).expect(204);
        const fay = await register(url, 'fay');
        const raced = await Promise.all([eve, fay].map((u) => as(url, u).post(`/api/invites/${invite.code}/join`)));
        expect(raced.map((r) => r.status).sort()).to.deep.equal([200, 409]);
        const rows = await suite.stack.db.query<{ n: number }>('SELECT count(*)::int AS n FROM members WHERE conversation_id = $1', [conv.id]);
        expect(rows[0]!.n).to.equal(500);
      });

      it('answers bad input with 4xx, never 500', async () => {
        const { owner, conv } = await group();
        for (const expires_in of [0, -5, 2_592_001, 1.5, 'soon', '']) {
          const res = await invites(owner, conv.id).send({ expires_in });
          expect(res.status, String(expires_in)).to.equal(400);
          expect(errorOf(res)).to.equal('bad_expires_in');
        }
        await invites(owner, conv.id).send({ expires_in: 2_592_000 }).expect(201);
        const direct = (await as(url, owner).post('/api/conversations').send({ with: (await register(url, 'dan')).name }).expect(201)).body.conversation;
        expect(errorOf(await invites(owner, direct.id).send({}).expect(400))).to.equal('not_a_group');
        await invites(owner, 'g-unknown').send({}).expect(404);
        const eve = await register(url, 'eve');
        for (const code of ['nope', 'x'.repeat(24), 'x'.repeat(200), 'a%2Fb']) {
          const res = await as(url, eve).get(`/api/invites/${code}`);
          expect(res.status, code).to.equal(404);
          expect(errorOf(res)).to.equal('not_found');
          await as(url, eve).post(`/api/invites/${code}/join`).expect(404);
        }
        // a NUL in the path is refused before any route reads it
        expect((await as(url, eve).get('/api/invites/%00')).status).to.be.within(400, 404);
      });

      it('/join/<code> opens the web client', async () => {
        const res = await supertest(url).get('/join/abcdefghijklmnopqrstuvwx').expect(200);
        expect(res.headers['content-type']).to.match(/text\/html/);
        expect(res.text).to.match(/<html/i);
        // the page names its assets relatively: from /join/<code> they are /join/<asset>
        for (const asset of [...res.text.matchAll(/(?:src|href)="([\w.-]+\.(?:js|css))"/g)].map((m) => m[1]!)) {
          const got = await supertest(url).get(`/join/${asset}`).expect(200);
          expect(got.headers['content-type'], asset).to.match(asset.endsWith('.js') ? /javascript/ : /text\/css/);
        }
      });
    });
  });
}

describe('groups: joining by links is rate-limited like opening conversations', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', CONVERSATIONS_PER_HOUR: '2' } });

  it('answers 429 with Retry-After past CONVERSATIONS_PER_HOUR', async () => {
    const url = suite.url();
    const owner = await register(url, 'own');
    const eve = await register(url, 'eve');
    const codes: string[] = [];
    for (let i = 0; i < 2; i++) {
      const conv = (await as(url, owner).post('/api/conversations').send({ title: `g${i}`, members: [] }).expect(201)).body.conversation;
      codes.push((await as(url, owner).post(`/api/conversations/${conv.id}/invites`).send({}).expect(201)).body.invite.code);
    }
    await as(url, eve).post(`/api/invites/${codes[0]}/join`).expect(200);
    await as(url, eve).post(`/api/invites/${codes[1]}/join`).expect(200);
    const limited = await as(url, eve).post(`/api/invites/${codes[1]}/join`).expect(429);
    expect(limited.headers['retry-after']).to.match(/^\d+$/);
  });
});
