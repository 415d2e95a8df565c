import { expect } from 'chai';
import { percentile, summarise } from '../../bench/lib/stats.js';
import { runPool } from '../../bench/lib/pool.js';
import { idFromText } from '../../bench/lib/tally.js';

describe('bench: latency statistics', () => {
  it('takes nearest-rank percentiles: p50 of 1..100 is 50, p99 is 99, p100 is the max', () => {
    const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).to.equal(50);
    expect(percentile(xs, 95)).to.equal(95);
    expect(percentile(xs, 99)).to.equal(99);
    expect(percentile(xs, 100)).to.equal(100);
    expect(percentile(xs, 0)).to.equal(1);
  });

  it('reports the one slow request of ten at p95 and p99, not at p50', () => {
    const s = summarise([5, 5, 5, 5, 5, 5, 5, 5, 5, 900]);
    expect(s.p50).to.equal(5);
    expect(s.p95).to.equal(900);
    expect(s.p99).to.equal(900);
    expect(s.max).to.equal(900);
    expect(s.mean).to.be.closeTo(94.5, 1e-9);
  });

  it('sorts numerically, not as text (100 ms is slower than 9 ms)', () => {
    expect(summarise([100, 9, 20]).p50).to.equal(20);
  });

  it('gives NaN, not a fake zero, when nothing was measured', () => {
    const s = summarise([]);
    expect(s.count).to.equal(0);
    expect(Number.isNaN(s.p99)).to.equal(true);
  });

  it('rejects a percentile outside 0..100', () => {
    expect(() => percentile([1], 101)).to.throw(RangeError);
  });
});

describe('bench: workload helpers', () => {
  it('finds the message id at the start of a text, as recipients see it', () => {
    expect(idFromText('mabc-17 xxxx')).to.equal('mabc-17');
    expect(idFromText('no-space')).to.equal(undefined);
    expect(idFromText(undefined)).to.equal(undefined);
  });

  it('runs a pool with bounded concurrency and stops at the first failure', async () => {
    let inFlight = 0;
    let most = 0;
    const done: number[] = [];
    await runPool([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((r) => setTimeout(r, 2));
      inFlight--;
      done.push(n);
    });
    expect(most).to.equal(3);
    expect(done.sort()).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);

    const started: number[] = [];
    let failure: unknown;
    await runPool([1, 2, 3, 4, 5, 6], 1, async (n) => {
      started.push(n);
      if (n === 2) throw new Error('boom');
    }).catch((e) => (failure = e));
    expect((failure as Error).message).to.equal('boom');
    expect(started).to.deep.equal([1, 2]);
  });
});
