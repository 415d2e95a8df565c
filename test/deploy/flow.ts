import { expect } from 'chai';
import { as, pollEvents, register } from '../support/client.js';
import { flushPresence, type Stack } from '../support/stack.js';

/**
 * The flow a deployment must carry, over two nodes: alice registers on node A, bob on node B;
 * bob's long-poll parks on B and wakes with alice's message sent on A; history reads on either.
 */
export async function crossNodeFlow(stack: Stack): Promise<void> {
  const [A, B] = stack.nodes.map((n) => n.url) as [string, string];
  const alice = await register(A, 'alice');
  const bob = await register(B, 'bob');
  const conv = (await as(A, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
  await pollEvents(A, alice);
  await pollEvents(B, bob);
  await flushPresence(stack);
  await pollEvents(B, bob);
  const started = Date.now();
  const parked = pollEvents(B, bob, 20);
  await new Promise((r) => setTimeout(r, 300)); // let it park
  await as(A, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'over the wire' }).expect(201);
  const events = await parked;
  expect(Date.now() - started, 'woken, not timed out').to.be.below(5000);
  expect(events.map((e) => e.message?.text)).to.include('over the wire');
  const history = await as(A, bob).get(`/api/conversations/${conv.id}/messages`).expect(200);
  expect(history.body.messages.map((m: any) => m.text)).to.deep.equal(['over the wire']);
}
