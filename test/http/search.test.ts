import { expect } from 'chai';
import { accept, as, register, type TestUser } from '../support/client.js';
import { useStack } from '../support/stack.js';
import { Search } from '../../server/core/search.js';

/**
 * Search within a conversation (GET /api/conversations/:id/search): the server opens the texts a
 * member may read, archived ones included, and finds q in them case-insensitively, newest first,
 * a bounded number of messages per call with `next` to go on.
 */
describe('search within a conversation', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'embedded' });
  const url = () => suite.stack.nodes[0]!.url;

  const send = async (u: TestUser, conv: string, text: string) =>
    (await as(url(), u).post(`/api/conversations/${conv}/messages`).send({ text }).expect(201)).body.message as { id: string; seq: number };
  const search = async (u: TestUser, conv: string, query: string) =>
    (await as(url(), u).get(`/api/conversations/${conv}/search?${query}`).expect(200)).body as { messages: Array<{ id: string; text: string; seq: number }>; next?: number };
  const texts = (r: { messages: Array<{ text: string }> }) => r.messages.map((m) => m.text);

  async function direct() {
    const alice = await register(url(), 'alice');
    const bob = await register(url(), 'bob');
    const conv = (await as(url(), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation as { id: string };
    await accept(url(), bob, conv.id);
    return { alice, bob, conv };
  }

  it('finds the text case-insensitively, newest first, for both members, with the full message view', async () => {
    const { alice, bob, conv } = await direct();
    await send(alice, conv.id, 'Hello World');
    await send(bob, conv.id, 'nothing to see');
    const last = await send(bob, conv.id, 'say hELLo again');
    const r = await search(alice, conv.id, 'q=HELLO');
    expect(texts(r)).to.deep.equal(['say hELLo again', 'Hello World']);
    expect(r.messages[0]).to.include({ id: last.id, seq: last.seq, from: bob.name, conversation: conv.id });
    expect(r.next).to.equal(undefined);
    expect(texts(await search(bob, conv.id, 'q=world'))).to.deep.equal(['Hello World']);
    expect(texts(await search(bob, conv.id, 'q=absent'))).to.deep.equal([]);
    // accents and other scripts fold too
    await send(alice, conv.id, 'ÉCOLE Straße');
    expect(texts(await search(bob, conv.id, `q=${encodeURIComponent('école')}`))).to.deep.equal(['ÉCOLE Straße']);
  });

  it('finds archived messages as well as those in the table', async () => {
    const { alice, bob, conv } = await direct();
    for (let i = 1; i <= 6; i++) await send(alice, conv.id, `needle ${i}`);
    await as(url(), bob).post(`/api/conversations/${conv.id}/read`).send({ up_to: 6 }).expect(204);
    const report = await suite.stack.nodes[0]!.deps.core.archive.run(new Date(Date.now() + 1000), 2);
    expect(report.messages).to.be.at.least(5);
    const inTable = await suite.stack.db.query<{ n: number }>('SELECT count(*)::int AS n FROM messages WHERE conversation_id = $1', [conv.id]);
    expect(Number(inTable[0]!.n)).to.equal(1);
    expect(texts(await search(bob, conv.id, 'q=NEEDLE'))).to.deep.equal(['needle 6', 'needle 5', 'needle 4', 'needle 3', 'needle 2', 'needle 1']);
    // pages with limit and next, across the archive
    const first = await search(bob, conv.id, 'q=needle&limit=4');
    expect(texts(first)).to.deep.equal(['needle 6', 'needle 5', 'needle 4', 'needle 3']);
    expect(first.next).to.equal(3);
    const second = await search(bob, conv.id, `q=needle&limit=4&before=${first.next}`);
    expect(texts(second)).to.deep.equal(['needle 2', 'needle 1']);
    expect(second.next).to.equal(undefined);
  });

  it('never shows what the member may not read: a later joiner of a "joined" group, a non-member', async () => {
    const owner = await register(url(), 'own');
    const ann = await register(url(), 'ann');
    const conv = (await as(url(), owner).post('/api/conversations').send({ title: 'team', members: [ann.name], history: 'joined' }).expect(201)).body
      .conversation as { id: string };
    await send(owner, conv.id, 'the secret plan');
    const carl = await register(url(), 'carl');
    await as(url(), owner).post(`/api/conversations/${conv.id}/members`).send({ name: carl.name }).expect(204);
    await send(ann, conv.id, 'plan B for everyone');
    expect(texts(await search(carl, conv.id, 'q=plan'))).to.deep.equal(['plan B for everyone']);
    expect(texts(await search(carl, conv.id, 'q=secret'))).to.deep.equal([]);
    // the earlier members read both
    expect(texts(await search(ann, conv.id, 'q=plan'))).to.deep.equal(['plan B for everyone', 'the secret plan']);
    // someone outside: 403; a conversation that does not exist: 404
    const dave = await register(url(), 'dave');
    const refused = await as(url(), dave).get(`/api/conversations/${conv.id}/search?q=plan`).expect(403);
    expect(refused.body.error.code).to.equal('forbidden');
    expect(JSON.stringify(refused.body)).not.to.contain('secret');
    await as(url(), dave).get('/api/conversations/c_nope/search?q=plan').expect(404);
    // removed, carl searches nothing any more
    await as(url(), owner).delete(`/api/conversations/${conv.id}/members/${carl.name}`).expect(204);
    await as(url(), carl).get(`/api/conversations/${conv.id}/search?q=plan`).expect(403);
  });

  it('a group showing newcomers everything lets them search everything', async () => {
    const owner = await register(url(), 'own');
    const conv = (await as(url(), owner).post('/api/conversations').send({ title: 'open', members: [], history: 'all' }).expect(201)).body
      .conversation as { id: string };
    await send(owner, conv.id, 'old news');
    const carl = await register(url(), 'carl');
    await as(url(), owner).post(`/api/conversations/${conv.id}/members`).send({ name: carl.name }).expect(204);
    expect(texts(await search(carl, conv.id, 'q=news'))).to.deep.equal(['old news']);
  });

  it('searches the current text: an edit is found by its new words, not its old; a deleted message not at all', async function () {
    const { alice, bob, conv } = await direct();
    const m = await send(alice, conv.id, 'a typo in here');
    await as(url(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/edit`).send({ text: 'fixed words now' }).expect(200);
    expect(texts(await search(bob, conv.id, 'q=typo'))).to.deep.equal([]);
    expect(texts(await search(bob, conv.id, 'q=FIXED'))).to.deep.equal(['fixed words now']);
    await as(url(), alice).post(`/api/conversations/${conv.id}/messages/${m.id}/delete`).expect(200);
    expect(texts(await search(bob, conv.id, 'q=fixed'))).to.deep.equal([]);
  });

  it('answers 400 bad_q, bad_limit, bad_before for bad input, and 401 without a token', async () => {
    const { alice, conv } = await direct();
    const bad = async (query: string, code: string) => {
      const res = await as(url(), alice).get(`/api/conversations/${conv.id}/search${query}`).expect(400);
      expect(res.body.error.code).to.equal(code);
    };
    await bad('', 'bad_q');
    await bad('?q=', 'bad_q');
    await bad('?q=%20%20', 'bad_q');
    await bad(`?q=${'x'.repeat(101)}`, 'bad_q');
    await bad('?q=a&q=b', 'bad_q');
    await bad('?q=hi&limit=0', 'bad_limit');
    await bad('?q=hi&limit=51', 'bad_limit');
    await bad('?q=hi&before=-1', 'bad_before');
    await bad('?q=hi&before=x', 'bad_before');
    await as(url(), alice).get(`/api/conversations/${conv.id}/search?q=${'x'.repeat(100)}`).expect(200);
    const res = await fetch(`${url()}/api/conversations/${conv.id}/search?q=hi`);
    expect(res.status).to.equal(401);
  });

  it('looks through a bounded number of messages per call, and next goes on from there', async () => {
    const { alice, conv } = await direct();
    await send(alice, conv.id, 'the one match');
    for (let i = 0; i < 7; i++) await send(alice, conv.id, `filler ${i}`);
    const core = suite.stack.nodes[0]!.deps.core;
    const me = await core.accounts.authenticate(alice.token);
    const small = new Search(core.messaging, 3);
    const pages: Array<{ found: string[]; next?: number }> = [];
    let before: number | undefined;
    for (let i = 0; i < 10; i++) {
      const r = await small.search(me!, conv.id, { q: 'match', before });
      pages.push({ found: r.messages.map((m) => m.text), ...(r.next !== undefined ? { next: r.next } : {}) });
      if (r.next === undefined) break;
      before = r.next;
    }
    expect(pages).to.deep.equal([
      { found: [], next: 6 },
      { found: [], next: 3 },
      { found: ['the one match'] },
    ]);
  });
});
