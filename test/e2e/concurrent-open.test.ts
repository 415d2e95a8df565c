import { expect } from 'chai';
import { as, pollEvents, register, type TestUser } from '../support/client.js';
import { useStack } from '../support/stack.js';

/**
 * People open several chats at once, groups add members, a deploy reconnects everyone: many
 * overlapping conversations opened at the same moment through two nodes. Not a timed test: it
 * asserts that every request succeeds, that each pair gets one direct conversation whoever opens
 * it and wherever, that every group is created once with its members, and that PostgreSQL never
 * had to break a deadlock (each node counts the 40P01 errors its statements saw, retried or not).
 */
describe('opening many overlapping conversations at once over two nodes', function () {
  this.timeout(180_000);
  const suite = useStack({ backend: 'real', nodes: 2 });

  const USERS = 60;
  const PARTNERS = 10;
  const GROUPS = 30;
  const GROUP_SIZE = 5;
  const CONCURRENCY = 50;

  /** Run the tasks with at most `limit` in flight; resolves every outcome (never rejects). */
  async function pool<T>(tasks: Array<() => Promise<T>>, limit: number): Promise<Array<PromiseSettledResult<T>>> {
    const out: Array<PromiseSettledResult<T>> = new Array(tasks.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: limit }, async () => {
        while (next < tasks.length) {
          const i = next++;
          try {
            out[i] = { status: 'fulfilled', value: await tasks[i]!() };
          } catch (reason) {
            out[i] = { status: 'rejected', reason };
          }
        }
      }),
    );
    return out;
  }

  it('answers every open, gives each pair one conversation and each group one, with no deadlock', async () => {
    const nodes = [suite.url(0), suite.url(1)];
    const users: TestUser[] = [];
    for (let i = 0; i < USERS; i++) users.push(await register(nodes[i % 2]!, 'o'));
    for (const [i, u] of users.entries()) await pollEvents(nodes[i % 2]!, u); // each holds a cursor

    // Each user opens a direct chat with the next PARTNERS users (so every pair is opened by both
    // of its users, from different nodes when their indexes differ in parity), and GROUPS groups of
    // GROUP_SIZE overlapping members are created alongside; all shuffled together.
    type Task = { kind: 'direct'; from: number; to: number } | { kind: 'group'; from: number; members: number[]; title: string };
    const tasks: Task[] = [];
    for (let i = 0; i < USERS; i++) {
      for (let k = 1; k <= PARTNERS / 2; k++) {
        const j = (i + k) % USERS;
        tasks.push({ kind: 'direct', from: i, to: j }, { kind: 'direct', from: j, to: i });
      }
    }
    for (let g = 0; g < GROUPS; g++) {
      const first = (g * 7) % USERS;
      const members = Array.from({ length: GROUP_SIZE - 1 }, (_, k) => (first + 1 + k * 3) % USERS);
      tasks.push({ kind: 'group', from: first, members, title: `group ${g}` });
    }
    for (let i = tasks.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [tasks[i], tasks[j]] = [tasks[j]!, tasks[i]!];
    }

    const results = await pool(
      tasks.map((t, n) => async () => {
        const node = nodes[n % 2]!;
        const me = users[t.from]!;
        const body = t.kind === 'direct' ? { with: users[t.to]!.name } : { title: t.title, members: t.members.map((m) => users[m]!.name) };
        const res = await as(node, me).post('/api/conversations').send(body);
        if (res.status !== 200 && res.status !== 201) throw new Error(`${res.status} ${JSON.stringify(res.body)}`);
        return res.body.conversation as { id: string; kind: string; members: string[]; title: string | null };
      }),
      CONCURRENCY,
    );

    const failures = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    expect(failures, 'failed opens').to.deep.equal([]);
    const deadlocks = suite.stack.nodes.map((n) => n.deps.db.deadlocks);
    expect(deadlocks, 'deadlocks PostgreSQL reported to each node').to.deep.equal([0, 0]);

    // One direct conversation per pair: both users, opening it from either node, got the same id.
    const byPair = new Map<string, Set<string>>();
    tasks.forEach((t, n) => {
      if (t.kind !== 'direct') return;
      const conv = (results[n] as PromiseFulfilledResult<{ id: string; members: string[] }>).value;
      const key = [t.from, t.to].sort((a, b) => a - b).join('-');
      byPair.set(key, (byPair.get(key) ?? new Set()).add(conv.id));
      expect(conv.members).to.have.members([users[t.from]!.name, users[t.to]!.name]);
    });
    expect(byPair.size).to.equal((USERS * PARTNERS) / 2);
    expect([...byPair.values()].filter((ids) => ids.size !== 1), 'pairs with more than one conversation').to.deep.equal([]);

    // Every group once, with its members; every user lists each of their conversations once.
    const groupIds = tasks.flatMap((t, n) =>
      t.kind === 'group' ? [(results[n] as PromiseFulfilledResult<{ id: string }>).value.id] : [],
    );
    expect(new Set(groupIds).size).to.equal(GROUPS);
    const expected = new Map<number, Set<string>>(users.map((_, i) => [i, new Set<string>()]));
    tasks.forEach((t, n) => {
      const id = (results[n] as PromiseFulfilledResult<{ id: string }>).value.id;
      const who = t.kind === 'direct' ? [t.from, t.to] : [t.from, ...t.members];
      for (const w of who) expected.get(w)!.add(id);
    });
    for (const [i, u] of users.entries()) {
      const listed = (await as(nodes[(i + 1) % 2]!, u).get('/api/conversations').expect(200)).body.conversations as Array<{ id: string }>;
      const ids = listed.map((c) => c.id);
      expect(ids.length, `${u.name} lists each conversation once`).to.equal(new Set(ids).size);
      expect(new Set(ids)).to.deep.equal(expected.get(i));
      // and their stream told them of each conversation exactly once
      const events: Array<Record<string, any>> = [];
      for (let page = 0; page < 10; page++) {
        const batch = await pollEvents(nodes[i % 2]!, u);
        if (batch.length === 0) break;
        events.push(...batch);
      }
      const created = events.filter((e) => e.type === 'conversation' && e.change === 'created').map((e) => e.conversation.id as string);
      expect(created.length, `${u.name} hears of each new conversation once`).to.equal(new Set(created).size);
      expect(new Set(created)).to.deep.equal(expected.get(i));
    }
  });
});
