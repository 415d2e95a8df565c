import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import type { Database } from '../../server/store/db.js';
import { Store, type NewMessage } from '../../server/store/store.js';
import { unique } from '../support/services.js';

/**
 * The Store contract: the same behaviour on PostgreSQL and on the embedded PGlite.
 * `make` opens a migrated database (and says how to release it).
 */
export function storeContract(name: string, make: (ctx: Mocha.Context) => Promise<{ db: Database; release: () => Promise<void> }>) {
  describe(`Store contract (${name})`, function () {
    this.timeout(60_000);
    let db: Database;
    let release: () => Promise<void>;
    let store: Store;
    before(async function () {
      ({ db, release } = await make(this));
      store = new Store(db);
    });
    after(async () => release?.());

    const user = async (base = 'u') => (await store.createUser(unique(base), 'hash'))!;
    const conversation = async (kind: 'direct' | 'group', ids: number[]) => {
      const id = unique('c');
      await store.createConversation({ id, kind, title: kind === 'group' ? 'g' : null, wrappedKey: randomBytes(61), ownerId: ids[0]!, memberIds: ids });
      return id;
    };
    const msg = (conversationId: string, senderId: number, clientId: string | null = null): NewMessage => ({
      id: unique('m'),
      conversationId,
      senderId,
      body: randomBytes(40),
      clientId,
      attachment: null,
    });

    it('refuses a taken name and finds users by name, id and token', async () => {
      const a = await user();
      expect(await store.createUser(a.name, 'other')).to.equal(null);
      expect((await store.userByName(a.name))!.id).to.equal(a.id);
      const hash = randomBytes(32);
      await store.createToken(hash, a.id);
      expect(await store.userByToken(hash)).to.deep.equal({ id: a.id, name: a.name });
      await store.deleteToken(hash);
      expect(await store.userByToken(hash)).to.equal(null);
    });

    it('keeps one direct conversation per pair, whoever creates it', async () => {
      const a = await user();
      const b = await user();
      const first = await conversation('direct', [a.id, b.id]);
      const again = await store.createConversation({ id: unique('c'), kind: 'direct', title: null, wrappedKey: randomBytes(61), ownerId: b.id, memberIds: [b.id, a.id] });
      expect(again).to.equal(null);
      expect((await store.directConversation(b.id, a.id))!.id).to.equal(first);
    });

    it('opens a batch in one go: a pair named twice or already open gets its one conversation, each member hears once', async () => {
      const [a, b, c, d] = [await user(), await user(), await user(), await user()];
      const existing = await conversation('direct', [a.id, c.id]);
      const item = (kind: 'direct' | 'group', ids: number[]) => ({
        id: unique('c'),
        kind,
        title: kind === 'group' ? 'team' : null,
        wrappedKey: randomBytes(61),
        ownerId: ids[0]!,
        memberIds: ids,
      });
      const batch = [item('direct', [a.id, b.id]), item('direct', [b.id, a.id]), item('direct', [c.id, a.id]), item('group', [d.id, a.id, b.id, a.id])];
      const { outcomes, heads } = await store.openBatch(batch);
      expect(outcomes.map((o) => o.created)).to.deep.equal([true, false, false, true]);
      expect(outcomes[1]!.id).to.equal(outcomes[0]!.id);
      expect(outcomes[2]!.id).to.equal(existing);
      expect(outcomes[3]!.id).to.equal(batch[3]!.id);
      expect((await store.directConversation(a.id, b.id))!.id).to.equal(batch[0]!.id);
      // a: the new direct and the group; b: the same; d: the group; c: nothing new
      expect([...heads.keys()].sort()).to.deep.equal([a.id, b.id, d.id].sort());
      const entries = await store.readStream(a.id, 0, 10);
      expect(entries.filter((e) => e.type === 'conversation').map((e) => e.conversationId).sort()).to.deep.equal(
        [existing, batch[0]!.id, batch[3]!.id].sort(),
      );
      const roles = (await store.members([batch[3]!.id])).map((m) => [m.userId, m.role]);
      expect(roles).to.have.deep.members([
        [d.id, 'owner'],
        [a.id, 'member'],
        [b.id, 'member'],
      ]);
    });

    it('numbers messages per conversation and streams per user without gaps, under concurrent batches', async () => {
      const a = await user();
      const b = await user();
      const c = await conversation('direct', [a.id, b.id]);
      const sends = Array.from({ length: 40 }, (_, i) => store.sendBatch([msg(c, i % 2 ? a.id : b.id), msg(c, a.id)]));
      const results = await Promise.all(sends);
      const seqs = results.flatMap((r) => r.outcomes.map((o) => (o.ok ? o.message.seq : -1))).sort((x, y) => x - y);
      expect(seqs).to.deep.equal(Array.from({ length: 80 }, (_, i) => i + 1));
      const stream = await store.readStream(b.id, 0, 1000);
      expect(stream.map((e) => e.seq)).to.deep.equal(Array.from({ length: stream.length }, (_, i) => i + 1));
      const msgSeqs = stream.filter((e) => e.type === 'message').map((e) => e.message!.seq);
      expect(msgSeqs).to.deep.equal([...msgSeqs].sort((x, y) => x - y)); // stream order = conversation order
      expect(msgSeqs).to.have.length(80);
    });

    it('returns the first message for a repeated client_id, within a batch and across batches', async () => {
      const a = await user();
      const b = await user();
      const c = await conversation('direct', [a.id, b.id]);
      const one = await store.sendBatch([msg(c, a.id, 'k1'), msg(c, a.id, 'k1'), msg(c, b.id, 'k1')]);
      const [x, y, z] = one.outcomes;
      expect(x!.ok && y!.ok && z!.ok).to.equal(true);
      if (!x!.ok || !y!.ok || !z!.ok) return;
      expect(x.created).to.equal(true);
      expect(y.created).to.equal(false);
      expect(y.message.id).to.equal(x.message.id);
      expect(z.created).to.equal(true); // another sender's k1 is another message
      const two = await store.sendBatch([msg(c, a.id, 'k1')]);
      expect(two.outcomes[0]).to.deep.include({ ok: true, created: false });
      expect((await store.history(c, Number.MAX_SAFE_INTEGER, 50)).length).to.equal(2);
    });

    it('refuses a non-member without failing the rest of the batch', async () => {
      const a = await user();
      const b = await user();
      const m = await user();
      const c = await conversation('direct', [a.id, b.id]);
      const { outcomes } = await store.sendBatch([msg(c, m.id), msg(c, a.id), msg('no-such', a.id)]);
      expect(outcomes.map((o) => (o.ok ? 'ok' : o.reason))).to.deep.equal(['not_member', 'ok', 'no_conversation']);
    });

    it('says which message a member got when a batch gave them exactly one entry', async () => {
      const a = await user();
      const b = await user();
      const d = await user();
      const ab = await conversation('direct', [a.id, b.id]);
      const ad = await conversation('direct', [a.id, d.id]);
      const { outcomes, heads, singles } = await store.sendBatch([msg(ab, a.id), msg(ad, a.id)]);
      const [one, two] = outcomes.map((o) => (o.ok ? o.message : null));
      expect(singles.get(b.id)).to.deep.equal({ conversationId: ab, msgSeq: one!.seq });
      expect(singles.get(d.id)).to.deep.equal({ conversationId: ad, msgSeq: two!.seq });
      expect(singles.has(a.id)).to.equal(false); // two entries: the wake-up cannot carry them
      const entry = (await store.readStream(b.id, 0, 10)).find((e) => e.seq === heads.get(b.id));
      expect(entry?.message?.id).to.equal(one!.id);
    });

    it('acknowledging coalesces delivered receipts per conversation, once', async () => {
      const a = await user();
      const b = await user();
      const c = await conversation('direct', [a.id, b.id]);
      await store.sendBatch([msg(c, a.id), msg(c, a.id), msg(c, a.id)]);
      const head = (await store.pollStart(b.id, null)).head;
      const { heads, singles } = await store.acknowledge([{ userId: b.id, userName: b.name, upTo: head }]);
      expect([...heads.keys()]).to.deep.equal([a.id]);
      const receipts = (await store.readStream(a.id, 0, 100)).filter((e) => e.type === 'receipt');
      expect(receipts.map((r) => r.payload)).to.deep.equal([{ user: b.name, status: 'delivered', up_to: 3, at: receipts[0]!.payload!['at'] }]);
      // the one new entry of a's stream is reported, so its wake-up can carry it
      expect(receipts[0]!.seq).to.equal(heads.get(a.id));
      expect(singles.get(a.id)).to.deep.equal({ conversationId: c, payload: receipts[0]!.payload });
      expect((await store.acknowledge([{ userId: b.id, userName: b.name, upTo: head }])).heads.size).to.equal(0); // again: nothing new
      const positions = await store.members([c]);
      expect(positions.find((p) => p.userId === b.id)).to.include({ deliveredSeq: 3, readSeq: 0 });
    });


    it('a poll acknowledging only what makes nothing delivered (my own message) moves my cursor at once; messages from others wait for acknowledge', async () => {
      const a = await user();
      const b = await user();
      const c = await conversation('direct', [a.id, b.id]);
      await store.sendBatch([msg(c, a.id)]);
      const mine = await store.pollStart(a.id, null);
      expect(mine).to.include({ acked: 0, needsDelivery: false });
      expect(await store.pollStart(a.id, mine.head)).to.include({ head: mine.head, acked: 0, needsDelivery: false });
      expect((await store.pollStart(a.id, null)).acked).to.equal(mine.head); // done on the spot
      const theirs = await store.pollStart(b.id, null);
      expect(await store.pollStart(b.id, theirs.head)).to.include({ acked: 0, needsDelivery: true });
      expect((await store.pollStart(b.id, null)).acked).to.equal(0); // left to acknowledge, which sends the receipt
      expect((await store.members([c])).find((p) => p.userId === b.id)).to.include({ deliveredSeq: 0 });
    });
    it('consent: a member who has not accepted sends no read receipt (delivered still goes); sending accepts', async () => {
      const a = await user();
      const b = await user();
      const c = await conversation('direct', [a.id, b.id]);
      expect((await store.members([c])).map((m) => [m.userId, m.accepted])).to.have.deep.members([
        [a.id, true],
        [b.id, false],
      ]);
      await store.sendBatch([msg(c, a.id)]);
      expect((await store.contactIds([a.id, b.id])).get(b.id) ?? []).to.deep.equal([]); // b shares presence with nobody
      expect((await store.markRead(b.id, b.name, c, 1)).heads.has(a.id)).to.equal(false);
      expect((await store.readStream(a.id, 0, 10)).filter((e) => e.type === 'receipt')).to.deep.equal([]);
      await store.sendBatch([msg(c, b.id)]); // b replies: consents
      expect((await store.members([c])).find((m) => m.userId === b.id)!.accepted).to.equal(true);
      expect((await store.contactIds([b.id])).get(b.id)).to.deep.equal([a.id]);
      await store.sendBatch([msg(c, a.id)]);
      const { heads } = await store.markRead(b.id, b.name, c, 3);
      expect(heads.has(a.id)).to.equal(true);
    });

    it('reading moves read and delivered, tells the senders and the reader\'s other devices', async () => {
      const a = await user();
      const b = await user();
      const c = await conversation('direct', [a.id, b.id]);
      await store.sendBatch([msg(c, a.id), msg(c, a.id)]);
      await store.accept(c, b.id, b.name);
      const { heads } = await store.markRead(b.id, b.name, c, 2);
      expect([...heads.keys()].sort()).to.deep.equal([a.id, b.id].sort());
      expect((await store.members([c])).find((p) => p.userId === b.id)).to.include({ deliveredSeq: 2, readSeq: 2 });
      expect((await store.markRead(b.id, b.name, c, 1)).heads.size).to.equal(0); // never backwards
      const summary = (await store.conversationsOf(b.id)).find((s) => s.id === c)!;
      expect(summary.unread).to.equal(0);
    });

    it('lists contacts with their direct conversation, and changes group members', async () => {
      const a = await user();
      const b = await user();
      const d = await user();
      const direct = await conversation('direct', [a.id, b.id]);
      const group = await conversation('group', [a.id, d.id]);
      const contacts = await store.contacts(a.id);
      expect(contacts.map((x) => [x.name, x.conversation])).to.have.deep.members([
        [b.name, direct],
        [d.name, null],
      ]);
      expect((await store.changeMembers(group, { add: b.id })).changed).to.equal(true);
      expect((await store.changeMembers(group, { add: b.id })).changed).to.equal(false);
      expect((await store.changeMembers(group, { remove: d.id })).changed).to.equal(true);
      expect((await store.members([group])).map((m) => m.userId).sort()).to.deep.equal([a.id, b.id].sort());
      expect((await store.members([group])).find((m) => m.userId === a.id)!.role).to.equal('owner');
    });
  });
}
