import { expect } from 'chai';
import { createHash } from 'node:crypto';
import supertest from 'supertest';
import { REVOKE_CHANNEL } from '../../server/core/accounts.js';
import { accept, as, PASSWORD, pollEvents, register, type TestUser } from '../support/client.js';
import { requireServices } from '../support/services.js';
import { flushPresence, startStack, type Stack } from '../support/stack.js';

/**
 * Issue 13 B across two nodes sharing PostgreSQL and Redis: signing devices out reaches the node
 * that had their token cached, and a block keeps presence news from the blocked user.
 */
describe('accounts across two nodes', function () {
  this.timeout(60_000);
  let stack: Stack;
  let A: string;
  let B: string;
  before(async function () {
    await requireServices(this);
    // A 2 s presence window, so going offline takes seconds, not a minute
    stack = await startStack({ backend: 'real', nodes: 2, env: { PRESENCE_TIMEOUT: '2' } });
    [A, B] = stack.nodes.map((n) => n.url) as [string, string];
  });
  after(async () => stack?.close());

  const login = async (url: string, name: string, device: string): Promise<TestUser> => ({
    name,
    token: (await supertest(url).post('/api/login').send({ name, password: PASSWORD, device }).expect(200)).body.token as string,
  });
  /** Resolves when node i has heard that this token was revoked (its cache entry is gone then). */
  function revokedOn(i: number, token: string): Promise<void> {
    const bus = stack.nodes[i]!.deps.bus;
    const hex = createHash('sha256').update(token).digest('hex');
    return new Promise<void>((resolve, reject) => {
      const handler = (payload: string) => {
        if (payload !== hex) return;
        void bus.unsubscribe(REVOKE_CHANNEL, handler).then(() => resolve(), reject);
      };
      bus.subscribe(REVOKE_CHANNEL, handler).catch(reject);
    });
  }

  it("alice's password change on node A signs out her other devices, whose tokens node B had cached; the device she changed it on stays", async () => {
    const alice = await register(A, 'alice');
    const phone = await login(B, alice.name, 'phone');
    const tablet = await login(A, alice.name, 'tablet');
    await pollEvents(B, phone); // node B now trusts the phone's token from its cache
    await pollEvents(B, tablet);
    const heard = Promise.all([revokedOn(1, phone.token), revokedOn(1, tablet.token)]);
    await as(A, alice).post('/api/me/password').send({ current: PASSWORD, password: 'another long secret' }).expect(204);
    await heard;
    expect((await as(B, phone).get('/api/events?wait=0').expect(401)).body.error.code).to.equal('unauthorized');
    await as(B, tablet).get('/api/me').expect(401);
    await as(A, phone).get('/api/me').expect(401);
    await as(B, alice).get('/api/me').expect(200);
    const devices = (await as(B, alice).get('/api/me/devices').expect(200)).body.devices;
    expect(devices.map((d: any) => [d.name, d.current])).to.deep.equal([['', true]]);
  });

  it('a poll parked on node B when its device is revoked on node A answers 401, not the events that wake it', async () => {
    const { alice, bob, conv } = await (async () => {
      const alice = await register(A, 'alice');
      const bob = await register(A, 'bob');
      const conv = (await as(A, bob).post('/api/conversations').send({ with: alice.name }).expect(201)).body.conversation;
      return { alice, bob, conv };
    })();
    const phone = await login(B, alice.name, 'phone');
    await flushPresence(stack); // presence news of the three lands now, not while the phone is parked
    await pollEvents(B, phone);
    const answered = as(B, phone).get(`/api/events?wait=20&since=${phone.cursor}`).then((r) => r);
    await new Promise((r) => setTimeout(r, 300)); // let it park
    expect(stack.nodes[1]!.deps.lot.parked).to.equal(1);
    const heard = revokedOn(1, phone.token);
    const id = (await as(A, alice).get('/api/me/devices').expect(200)).body.devices.find((d: any) => d.name === 'phone').id;
    await as(A, alice).post(`/api/me/devices/${id}/revoke`).expect(204);
    await heard;
    await as(A, bob).post(`/api/conversations/${conv.id}/messages`).send({ text: 'wake up' }).expect(201);
    const res = await answered;
    expect(res.status).to.equal(401);
    expect(res.body.events).to.equal(undefined);
  });

  it('a device revoked on node B is signed out on node A, where it was in use', async () => {
    const alice = await register(A, 'alice');
    const phone = await login(A, alice.name, 'phone');
    await pollEvents(A, phone);
    const id = (await as(B, alice).get('/api/me/devices').expect(200)).body.devices.find((d: any) => d.name === 'phone').id;
    const heard = revokedOn(0, phone.token);
    await as(B, alice).delete(`/api/me/devices/${id}`).expect(204);
    await heard;
    await as(A, phone).get('/api/events?wait=0').expect(401);
    await as(A, alice).get('/api/me').expect(200);
  });

  it('a user alice blocks gets no presence events of hers (offline, then online again); carol does', async () => {
    const alice = await register(A, 'alice');
    const bob = await register(B, 'bob');
    const carol = await register(B, 'carol');
    for (const other of [bob, carol]) {
      const conv = (await as(A, alice).post('/api/conversations').send({ with: other.name }).expect(201)).body.conversation;
      await accept(B, other, conv.id);
    }
    // the news of alice coming online before the block lands now, and bob reads past it
    await flushPresence(stack);
    await pollEvents(B, bob);
    await as(A, alice).post('/api/blocks').send({ name: bob.name }).expect(204);
    // alice goes quiet: carol, polling on, hears she went offline
    const ofAlice = (events: Array<Record<string, any>>) => events.filter((e) => e.type === 'presence' && e.user === alice.name).map((e) => e.online);
    const carolSaw: boolean[] = [];
    const bobSaw: boolean[] = [];
    for (let i = 0; i < 10 && !carolSaw.includes(false); i++) {
      carolSaw.push(...ofAlice(await pollEvents(B, carol, 1)));
      bobSaw.push(...ofAlice(await pollEvents(B, bob, 0)));
    }
    expect(carolSaw).to.include(false);
    // alice is back: carol hears it; the same flush would have told bob
    await as(A, alice).post('/api/heartbeat').expect(204);
    for (let i = 0; i < 10 && carolSaw[carolSaw.length - 1] !== true; i++) {
      carolSaw.push(...ofAlice(await pollEvents(B, carol, 1)));
    }
    expect(carolSaw[carolSaw.length - 1]).to.equal(true);
    bobSaw.push(...ofAlice(await pollEvents(B, bob, 0)));
    expect(bobSaw).to.deep.equal([]);
    const contact = (await as(B, bob).get('/api/contacts').expect(200)).body.contacts.find((c: any) => c.name === alice.name);
    expect(contact).to.include({ online: false, last_seen: null });
  });
});
