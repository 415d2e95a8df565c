import { expect } from 'chai';
import { PASSWORD, register } from '../../support/client.js';
import { startStack, type Stack } from '../../support/stack.js';
import { BoshClient, post, within } from './helpers.js';

const DOMAIN = 'localhost';

/** Resolve once the node holds `n` BOSH requests (checked every 10 ms, for 5 s at most). */
async function holding(stack: Stack, n: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (stack.nodes[0]!.deps.bosh.heldCount !== n) {
    if (Date.now() > deadline) throw new Error(`the node never held ${n} BOSH request(s)`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Close the stack while `held` is held; the answer, and how long after the close it came. */
async function closeWhileHeld(stack: Stack, held: Promise<{ status: number; text: string }>): Promise<{ status: number; text: string; ms: number }> {
  await holding(stack, 1);
  const t0 = Date.now();
  const closed = stack.close();
  const answer = await within(held, 5_000, 'the held request');
  const ms = Date.now() - t0;
  await closed;
  return { ...answer, ms };
}

// Issue 14 item 5: the manager was built by its router and never stopped; a request held before
// login sat on a plain timer that shutdown did not answer, so a deploy cut it (the client saw a
// dropped connection) instead of answering it empty.
describe('BOSH at shutdown', function () {
  this.timeout(30_000);

  it('a request held before login is answered empty at once when the node shuts down, not cut', async () => {
    const stack = await startStack({ backend: 'embedded' });
    try {
      const url = stack.nodes[0]!.url;
      const c = new BoshClient([url], DOMAIN);
      await c.create({ wait: 60 });
      const answer = await closeWhileHeld(stack, post(url, c.build().xml));
      expect(answer.status).to.equal(200);
      expect(answer.text).to.not.contain('terminate');
      expect(answer.ms).to.be.below(2_000); // not the 23.5 s the hold would have lasted
    } finally {
      await stack.close();
    }
  });

  it('a request held after login is answered empty at once when the node shuts down, not cut', async () => {
    const stack = await startStack({ backend: 'embedded' });
    try {
      const url = stack.nodes[0]!.url;
      const alice = await register(url, 'alice');
      const c = new BoshClient([url], DOMAIN);
      await c.create({ wait: 60 });
      await c.login(alice.name, PASSWORD);
      // Initial presence with a ping, answered at once; the next request is the held one.
      await c.send(`<presence xmlns='jabber:client'/><iq xmlns='jabber:client' type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>`);
      const answer = await closeWhileHeld(stack, post(url, c.build().xml));
      expect(answer.status).to.equal(200);
      expect(answer.text).to.not.contain('terminate');
      expect(answer.ms).to.be.below(2_000);
    } finally {
      await stack.close();
    }
  });
});
