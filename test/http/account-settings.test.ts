import { expect } from 'chai';
import supertest from 'supertest';
import { accept, as, PASSWORD, pollEvents, register, type TestUser } from '../support/client.js';
import { requireServices } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';

/**
 * Issue 13 B through the JSON API: display names, password changes, devices, account deletion,
 * blocks and mutes, and who may see what.
 */
for (const backend of ['real', 'embedded'] as const) {
  describe(`accounts: profile, password, devices, deletion, blocks, mutes (${backend})`, function () {
    this.timeout(60_000);
    let stack: Stack;
    let url: string;
    before(async function () {
      if (backend === 'real') await requireServices(this);
      stack = await startStack({ backend });
      url = stack.nodes[0]!.url;
    });
    after(async () => stack?.close());

    const api = () => supertest(url);
    /** alice and bob with a direct conversation both consented to, both streams read. */
    async function pair() {
      const alice = await register(url, 'alice');
      const bob = await register(url, 'bob');
      const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation as { id: string };
      await accept(url, bob, conv.id);
      await pollEvents(url, alice);
      await pollEvents(url, bob);
      return { alice, bob, conv };
    }
    const send = (u: TestUser, conv: string, text: string) => as(url, u).post(`/api/conversations/${conv}/messages`).send({ text });
    const login = async (name: string, extra: Record<string, string> = {}, password = PASSWORD) =>
      (await api().post('/api/login').type('form').send({ name, password, ...extra }).expect(200)).body.token as string;

    describe('display name', () => {
      it('is "" until set; setting it (a form body, trimmed) tells me and whoever shares a conversation, not strangers', async () => {
        const { alice, bob } = await pair();
        const carol = await register(url, 'carol');
        await pollEvents(url, carol);
        expect((await as(url, alice).get('/api/me').expect(200)).body.user).to.deep.equal({ name: alice.name, display_name: '' });
        const res = await as(url, alice).post('/api/me').type('form').send({ display_name: '  Alice Liddell  ' }).expect(200);
        expect(res.body.user).to.deep.equal({ name: alice.name, display_name: 'Alice Liddell' });
        expect((await as(url, alice).get('/api/me').expect(200)).body.user.display_name).to.equal('Alice Liddell');
        const profile = { type: 'profile', user: alice.name, display_name: 'Alice Liddell' };
        expect(await pollEvents(url, bob)).to.deep.include(profile);
        expect(await pollEvents(url, alice)).to.deep.include(profile);
        expect((await pollEvents(url, carol)).filter((e) => e.type === 'profile')).to.deep.equal([]);
        const contacts = (await as(url, bob).get('/api/contacts').expect(200)).body.contacts;
        expect(contacts[0]).to.include({ name: alice.name, display_name: 'Alice Liddell' });
      });

      it('PATCH sets it too, "" clears it; anyone signed in reads a profile; unknown 404; too long 400', async () => {
        const alice = await register(url, 'alice');
        const carol = await register(url, 'carol');
        await api().patch('/api/me').set('Authorization', `Bearer ${alice.token}`).send({ display_name: 'A' }).expect(200);
        expect((await as(url, carol).get(`/api/users/${alice.name}`).expect(200)).body.user).to.deep.equal({ name: alice.name, display_name: 'A' });
        await as(url, alice).post('/api/me').send({ display_name: '' }).expect(200);
        expect((await as(url, carol).get(`/api/users/${alice.name.toUpperCase()}`).expect(200)).body.user.display_name).to.equal('');
        expect((await as(url, carol).get('/api/users/nobody-here-at-all').expect(404)).body.error.code).to.equal('not_found');
        expect((await as(url, carol).get('/api/users/%20bad%20name').expect(404)).body.error.code).to.equal('not_found');
        await api().get(`/api/users/${alice.name}`).expect(401);
        expect((await as(url, alice).post('/api/me').send({ display_name: 'x'.repeat(65) }).expect(400)).body.error.code).to.equal('bad_display_name');
        expect((await as(url, alice).post('/api/me').send({ display_name: 7 }).expect(400)).body.error.code).to.equal('bad_display_name');
        expect((await as(url, alice).post('/api/me').send({}).expect(400)).body.error.code).to.equal('bad_display_name');
      });
    });

    describe('password', () => {
      it('a wrong current password is 401 bad_credentials and changes nothing; a short new one 400', async () => {
        const alice = await register(url, 'alice');
        const res = await as(url, alice).post('/api/me/password').send({ current: 'not the password', password: 'new password 1' }).expect(401);
        expect(res.body.error.code).to.equal('bad_credentials');
        expect((await as(url, alice).post('/api/me/password').send({ current: PASSWORD, password: 'short' }).expect(400)).body.error.code).to.equal(
          'bad_password',
        );
        expect((await as(url, alice).post('/api/me/password').send({ password: 'new password 1' }).expect(400)).body.error.code).to.equal('bad_current');
        await login(alice.name);
        await as(url, alice).get('/api/me').expect(200);
      });

      it('changing it signs out every other device of mine, keeps this one, and the new password logs in', async () => {
        const alice = await register(url, 'alice');
        const phone: TestUser = { name: alice.name, token: await login(alice.name) };
        const bob = await register(url, 'bob');
        await as(url, phone).get('/api/me').expect(200);
        await as(url, alice).post('/api/me/password').type('form').send({ current: PASSWORD, password: 'a brand new secret' }).expect(204);
        expect((await as(url, phone).get('/api/events?wait=0').expect(401)).body.error.code).to.equal('unauthorized');
        await as(url, alice).get('/api/me').expect(200);
        await as(url, bob).get('/api/me').expect(200); // nobody else's tokens
        await api().post('/api/login').send({ name: alice.name, password: PASSWORD }).expect(401);
        await login(alice.name, {}, 'a brand new secret');
      });
    });

    describe('devices', () => {
      it('lists my devices with their names (given, or from the User-Agent), address and times, the current one marked', async () => {
        const alice = await register(url, 'alice');
        const phone: TestUser = { name: alice.name, token: await login(alice.name, { device: 'my phone' }) };
        const firefox = (
          await api()
            .post('/api/login')
            .set('User-Agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0')
            .send({ name: alice.name, password: PASSWORD })
            .expect(200)
        ).body.token as string;
        await as(url, { name: alice.name, token: firefox }).get('/api/me').expect(200);
        const { devices } = (await as(url, phone).get('/api/me/devices').expect(200)).body;
        expect(devices).to.have.length(3);
        expect(devices.map((d: any) => d.name)).to.include.members(['my phone', 'Firefox on Linux']);
        expect(devices.filter((d: any) => d.current).map((d: any) => d.name)).to.deep.equal(['my phone']);
        for (const d of devices) {
          expect(d.id).to.be.a('number');
          expect(Date.parse(d.created_at)).to.be.closeTo(Date.now(), 60_000);
          expect(Date.parse(d.last_used_at)).to.be.closeTo(Date.now(), 60_000);
          expect(d.address).to.match(/127\.0\.0\.1/);
        }
      });

      it('revoking a device signs it out (401) and only it; a device of someone else or unknown is 404', async () => {
        const alice = await register(url, 'alice');
        const bob = await register(url, 'bob');
        const phone: TestUser = { name: alice.name, token: await login(alice.name, { device: 'phone' }) };
        await as(url, phone).get('/api/events?wait=0').expect(200);
        const { devices } = (await as(url, alice).get('/api/me/devices').expect(200)).body;
        const target = devices.find((d: any) => d.name === 'phone');
        expect((await as(url, bob).delete(`/api/me/devices/${target.id}`).expect(404)).body.error.code).to.equal('not_found');
        await as(url, bob).post('/api/me/devices/abc/revoke').expect(404);
        await as(url, bob).delete('/api/me/devices/999999999').expect(404);
        await as(url, phone).get('/api/me').expect(200); // still signed in after bob's attempts
        await as(url, alice).post(`/api/me/devices/${target.id}/revoke`).expect(204);
        await as(url, phone).get('/api/events?wait=0').expect(401);
        await as(url, alice).get('/api/me').expect(200);
        await as(url, alice).delete(`/api/me/devices/${target.id}`).expect(404); // gone
        expect((await as(url, alice).get('/api/me/devices').expect(200)).body.devices).to.have.length(1);
      });

      it('a device name longer than 64 characters is 400 bad_device', async () => {
        const alice = await register(url, 'alice');
        const res = await api().post('/api/login').send({ name: alice.name, password: PASSWORD, device: 'x'.repeat(65) }).expect(400);
        expect(res.body.error.code).to.equal('bad_device');
      });
    });

    describe('deleting an account', () => {
      it('keep: every token is revoked, the messages stay from "[deleted]", the user leaves, the name stays reserved', async () => {
        const { alice, bob, conv } = await pair();
        await send(alice, conv.id, 'remember me').expect(201);
        const phone: TestUser = { name: alice.name, token: await login(alice.name) };
        await as(url, alice).post('/api/me/delete').type('form').send({ password: PASSWORD, messages: 'keep' }).expect(204);
        await as(url, alice).get('/api/me').expect(401);
        await as(url, phone).get('/api/me').expect(401);
        await api().post('/api/login').send({ name: alice.name, password: PASSWORD }).expect(401);
        const taken = await api().post('/api/register').send({ name: alice.name, password: PASSWORD }).expect(409);
        expect(taken.body.error.code).to.equal('name_taken');
        const history = (await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
        expect(history.map((m: any) => [m.from, m.text])).to.deep.equal([['[deleted]', 'remember me']]);
        const events = await pollEvents(url, bob);
        expect(events.some((e) => e.type === 'conversation' && e.change === 'member_removed')).to.equal(true);
        const list = (await as(url, bob).get('/api/conversations').expect(200)).body.conversations;
        expect(list.find((c: any) => c.id === conv.id).members).to.deep.equal([bob.name]);
        expect((await as(url, bob).get('/api/contacts').expect(200)).body.contacts).to.deep.equal([]);
        await as(url, bob).get(`/api/users/${alice.name}`).expect(404);
        await as(url, bob).post('/api/conversations').send({ with: alice.name }).expect(404);
      });

      it('remove: the messages become tombstones (no text, no attachment, deleted: true), in groups too', async () => {
        const { alice, bob, conv } = await pair();
        const carol = await register(url, 'carol');
        const group = (await as(url, alice).post('/api/conversations').send({ title: 'trio', members: [bob.name, carol.name] }).expect(201)).body
          .conversation;
        const one = (await send(alice, conv.id, 'secret one').expect(201)).body.message;
        await send(bob, conv.id, 'bob stays').expect(201);
        const two = (await send(alice, group.id, 'secret two').expect(201)).body.message;
        // an edit and a reaction (spec A) must not show through the tombstone
        await as(url, alice).post(`/api/conversations/${conv.id}/messages/${one.id}/edit`).send({ text: 'secret edited' }).expect(200);
        await as(url, carol).post(`/api/conversations/${group.id}/messages/${two.id}/reactions`).send({ emoji: '👍' }).expect(200);
        await as(url, alice).delete('/api/me').send({ password: PASSWORD, messages: 'remove' }).expect(204);
        const direct = (await as(url, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages;
        expect(direct.map((m: any) => [m.from, m.text, m.deleted ?? false])).to.deep.equal([
          ['[deleted]', '', true],
          [bob.name, 'bob stays', false],
        ]);
        expect(direct[0]).not.to.have.property('edited_at');
        expect((await as(url, bob).get(`/api/conversations/${conv.id}/messages/${one.id}/edits`).expect(200)).body.edits).to.deep.equal([]);
        const inGroup = (await as(url, carol).get(`/api/conversations/${group.id}/messages`).expect(200)).body.messages;
        expect(inGroup.map((m: any) => [m.from, m.text, m.deleted])).to.deep.equal([['[deleted]', '', true]]);
        expect(inGroup[0]).not.to.have.property('reactions');
        expect((await as(url, carol).get('/api/conversations').expect(200)).body.conversations[0].members).to.deep.equal(
          [bob.name, carol.name].sort(),
        );
        // the rows no longer hold the text: each body is the sealed empty text (a sealed text is its
        // length plus a fixed overhead), and no attachment
        const rows = await stack.db.query<{ name: string; len: number; attachment: unknown }>(
          `SELECT u.name, octet_length(m.body) AS len, m.attachment FROM messages m JOIN users u ON u.id = m.sender_id
           WHERE m.conversation_id = ANY($1::text[])`,
          [[conv.id, group.id]],
        );
        const overhead = Number(rows.find((r) => r.name === bob.name)!.len) - 'bob stays'.length;
        const hers = rows.filter((r) => r.name === alice.name);
        expect(hers).to.have.length(2);
        for (const r of hers) expect([Number(r.len), r.attachment]).to.deep.equal([overhead, null]);
      });

      it('a wrong password is 401 and deletes nothing; `messages` must be keep or remove', async () => {
        const alice = await register(url, 'alice');
        expect((await as(url, alice).post('/api/me/delete').send({ password: 'wrong password', messages: 'keep' }).expect(401)).body.error.code).to.equal(
          'bad_credentials',
        );
        expect((await as(url, alice).post('/api/me/delete').send({ password: PASSWORD, messages: 'all' }).expect(400)).body.error.code).to.equal(
          'bad_messages',
        );
        expect((await as(url, alice).post('/api/me/delete').send({ messages: 'keep' }).expect(400)).body.error.code).to.equal('bad_password');
        await as(url, alice).get('/api/me').expect(200);
      });
    });

    describe('blocks', () => {
      it('a user I block cannot open a direct conversation with me, send in ours, or put me in a group (403 blocked)', async () => {
        const { alice, bob, conv } = await pair();
        await as(url, alice).post('/api/blocks').type('form').send({ name: bob.name }).expect(204);
        await as(url, alice).post('/api/blocks').send({ name: bob.name }).expect(204); // twice is fine
        expect((await as(url, alice).get('/api/blocks').expect(200)).body.blocks).to.deep.equal([bob.name]);
        expect((await as(url, bob).get('/api/blocks').expect(200)).body.blocks).to.deep.equal([]);
        expect((await send(bob, conv.id, 'hello?').expect(403)).body.error.code).to.equal('blocked');
        expect((await as(url, bob).post('/api/conversations').send({ with: alice.name }).expect(403)).body.error.code).to.equal('blocked');
        const carol = await register(url, 'carol');
        const made = await as(url, bob).post('/api/conversations').send({ title: 'plot', members: [alice.name, carol.name] }).expect(403);
        expect(made.body.error.code).to.equal('blocked');
        const group = (await as(url, bob).post('/api/conversations').send({ title: 'plot', members: [carol.name] }).expect(201)).body.conversation;
        expect((await as(url, bob).post(`/api/conversations/${group.id}/members`).send({ name: alice.name }).expect(403)).body.error.code).to.equal(
          'blocked',
        );
        // the blocker still may write, and nothing bob tried reached alice
        await send(alice, conv.id, 'I can still talk').expect(201);
        expect((await pollEvents(url, alice)).filter((e) => e.type === 'message').map((e) => e.message.text)).to.deep.equal(['I can still talk']);
        await as(url, alice).delete(`/api/blocks/${bob.name}`).expect(204);
        expect((await as(url, alice).get('/api/blocks').expect(200)).body.blocks).to.deep.equal([]);
        await send(bob, conv.id, 'thanks').expect(201);
      });

      it('bad input: myself 400, unknown 404, no name 400', async () => {
        const alice = await register(url, 'alice');
        expect((await as(url, alice).post('/api/blocks').send({ name: alice.name }).expect(400)).body.error.code).to.equal('bad_name');
        expect((await as(url, alice).post('/api/blocks').send({ name: 'nobody-at-all-here' }).expect(404)).body.error.code).to.equal('not_found');
        expect((await as(url, alice).post('/api/blocks').send({}).expect(400)).body.error.code).to.equal('bad_name');
        expect((await as(url, alice).delete('/api/blocks/nobody-at-all-here').expect(404)).body.error.code).to.equal('not_found');
        await api().get('/api/blocks').expect(401);
      });

      it('a user I block sees neither my presence nor my last seen in contacts; others still do', async () => {
        const { alice, bob } = await pair();
        const carol = await register(url, 'carol');
        const c2 = (await as(url, alice).post('/api/conversations').send({ with: carol.name }).expect(201)).body.conversation;
        await accept(url, carol, c2.id);
        await as(url, alice).post('/api/blocks').send({ name: bob.name }).expect(204);
        await as(url, alice).post('/api/heartbeat').expect(204);
        const ofAlice = async (u: TestUser) =>
          ((await as(url, u).get('/api/contacts').expect(200)).body.contacts as any[]).find((c) => c.name === alice.name);
        await stack.nodes[0]!.deps.core.presence.flush();
        expect(await ofAlice(bob)).to.include({ online: false, last_seen: null, shared: false });
        expect(await ofAlice(carol)).to.include({ online: true, shared: true });
        // alice still sees bob's presence: blocking is one way
        expect(((await as(url, alice).get('/api/contacts').expect(200)).body.contacts as any[]).find((c) => c.name === bob.name)).to.include({
          online: true,
        });
      });
    });

    describe('mutes', () => {
      it('a muted conversation is marked muted, leaves unread_total, and only my own devices hear of it', async () => {
        const { alice, bob, conv } = await pair();
        const carol = await register(url, 'carol');
        const c2 = (await as(url, carol).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
        const phone: TestUser = { name: bob.name, token: await login(bob.name) };
        await pollEvents(url, phone);
        await send(alice, conv.id, 'one').expect(201);
        await send(alice, conv.id, 'two').expect(201);
        await send(carol, c2.id, 'three').expect(201);
        let list = (await as(url, bob).get('/api/conversations').expect(200)).body;
        expect(list.unread_total).to.equal(3);
        await pollEvents(url, alice);
        await as(url, bob).post(`/api/conversations/${conv.id}/mute`).expect(204);
        await as(url, bob).post(`/api/conversations/${conv.id}/mute`).expect(204); // twice is fine
        list = (await as(url, bob).get('/api/conversations').expect(200)).body;
        expect(list.unread_total).to.equal(1);
        expect(list.conversations.find((c: any) => c.id === conv.id)).to.include({ muted: true, unread: 2 });
        expect(list.conversations.find((c: any) => c.id === c2.id)).not.to.have.property('muted');
        const mine = (await pollEvents(url, phone)).filter((e) => e.type === 'conversation');
        expect(mine.map((e) => [e.change, e.conversation.id, e.conversation.muted])).to.deep.equal([['muted', conv.id, true]]);
        expect((await pollEvents(url, alice)).filter((e) => e.type === 'conversation')).to.deep.equal([]);
        expect((await as(url, alice).get('/api/conversations').expect(200)).body.conversations[0]).not.to.have.property('muted');
        await as(url, bob).post(`/api/conversations/${conv.id}/unmute`).type('form').send({}).expect(204);
        list = (await as(url, bob).get('/api/conversations').expect(200)).body;
        expect(list.unread_total).to.equal(3);
        expect((await pollEvents(url, phone)).filter((e) => e.type === 'conversation').map((e) => e.change)).to.deep.equal(['unmuted']);
      });

      it('only members mute: 403 for a stranger, 404 for an unknown conversation', async () => {
        const { conv } = await pair();
        const carol = await register(url, 'carol');
        await as(url, carol).post(`/api/conversations/${conv.id}/mute`).expect(403);
        await as(url, carol).post('/api/conversations/dnope/mute').expect(404);
      });
    });
  });
}
