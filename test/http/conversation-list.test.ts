import { expect } from 'chai';
import { as, register } from '../support/client.js';
import { useStack } from '../support/stack.js';

/** GET /api/conversations pages: everyone in many groups gets a bounded answer, and every conversation once. */
describe('the conversation list, a page at a time', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'embedded' });

  it('pages by last activity, newest first, each conversation once, and refuses a made-up cursor', async () => {
    const url = suite.url();
    const me = await register(url, 'lst');
    const others = [await register(url, 'lsa'), await register(url, 'lsb'), await register(url, 'lsc')];
    const ids: string[] = [];
    for (const o of others) ids.push((await as(url, me).post('/api/conversations').send({ with: o.name }).expect(201)).body.conversation.id);
    for (let g = 0; g < 2; g++) {
      ids.push((await as(url, me).post('/api/conversations').send({ title: `g${g}`, members: [others[g]!.name] }).expect(201)).body.conversation.id);
    }
    // activity: ids[3] oldest message, then ids[0], then ids[4] newest; ids[1], ids[2] none
    for (const i of [3, 0, 4]) {
      await as(url, me).post(`/api/conversations/${ids[i]}/messages`).send({ text: `in ${i}` }).expect(201);
      await new Promise((r) => setTimeout(r, 5)); // distinct milliseconds: the order is by time, then id
    }

    const seen: string[] = [];
    let before: string | undefined;
    for (let page = 0; page < 5; page++) {
      const res = await as(url, me).get(`/api/conversations?limit=2${before ? `&before=${encodeURIComponent(before)}` : ''}`).expect(200);
      expect(res.body.conversations.length).to.be.at.most(2);
      seen.push(...res.body.conversations.map((c: { id: string }) => c.id));
      before = res.body.next;
      if (!before) break;
    }
    expect(seen.length).to.equal(5);
    expect(new Set(seen).size).to.equal(5);
    expect(seen.slice(0, 3)).to.deep.equal([ids[4], ids[0], ids[3]]);
    expect(new Set(seen.slice(3))).to.deep.equal(new Set([ids[1], ids[2]]));
    const all = await as(url, me).get('/api/conversations').expect(200);
    expect(all.body.conversations.map((c: { id: string }) => c.id)).to.deep.equal(seen);
    expect(all.body).to.not.have.property('next');

    expect((await as(url, me).get('/api/conversations?before=abc').expect(400)).body.error.code).to.equal('bad_before');
    expect((await as(url, me).get('/api/conversations?limit=0').expect(400)).body.error.code).to.equal('bad_limit');
  });
});
