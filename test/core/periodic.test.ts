import { expect } from 'chai';
import { pino } from 'pino';
import { Periodic } from '../../server/core/periodic.js';
import { sleep } from '../support/sleep.js';

describe('Periodic background jobs (archive, retention)', function () {
  it('runs again after each run ends, never two at once, goes on after a failure, and stop waits for a run in progress', async () => {
    let active = 0;
    let most = 0;
    let runs = 0;
    let finished = 0;
    const job = async () => {
      runs++;
      active++;
      most = Math.max(most, active);
      await sleep(30); // longer than the period: a timer-driven job would overlap
      active--;
      finished++;
      if (runs === 2) throw new Error('second run fails');
    };
    const p = new Periodic(job, pino({ level: 'silent' }), 'test job');
    p.start(0, 5);
    for (let i = 0; i < 100 && runs < 3; i++) await sleep(20); // at most 2 s on a busy machine
    expect(runs).to.be.at.least(3); // the failed second run did not end the series
    expect(most).to.equal(1);
    await p.stop();
    expect(active).to.equal(0); // stop waited for the run in progress
    const after = runs;
    await sleep(60);
    expect(runs).to.equal(after); // and no run follows
    expect(finished).to.equal(runs);
  });
});
