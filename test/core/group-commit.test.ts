import { expect } from 'chai';
import { GroupCommit } from '../../server/core/group-commit.js';

/** Group commit: what sends and opens go through (no services). */
describe('group commit', () => {
  it('runs an item at once when idle, and gathers what arrives meanwhile into the next batch', async () => {
    const batches: number[][] = [];
    let release: () => void = () => undefined;
    const gc = new GroupCommit<number, number>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      return items.map((i) => i * 10);
    }, 1);
    const first = gc.submit(1);
    const rest = [2, 3, 4].map((i) => gc.submit(i));
    expect(batches).to.deep.equal([[1]]); // alone, at once
    release();
    expect(await Promise.all([first, ...rest])).to.deep.equal([10, 20, 30, 40]);
    expect(batches).to.deep.equal([[1], [2, 3, 4]]); // one batch for the three that waited
  });

  it('a failing item does not fail its neighbours: the batch is run again one by one', async () => {
    const gc = new GroupCommit<number, number>(async (items) => {
      if (items.includes(13)) {
        if (items.length > 1) throw new Error('batch with 13');
        throw new Error('13 alone');
      }
      return items;
    }, 1);
    const blocker = gc.submit(0);
    const outcomes = await Promise.allSettled([blocker, ...[12, 13, 14].map((i) => gc.submit(i))]);
    expect(outcomes.map((o) => o.status)).to.deep.equal(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(((outcomes[2] as PromiseRejectedResult).reason as Error).message).to.equal('13 alone');
  });
});
