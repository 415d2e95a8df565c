import { expect } from 'chai';
import pino from 'pino';
import { LocalBus } from '../../server/bus/local.js';
import { encodeHead, userChannel } from '../../server/core/notifier.js';
import { ParkingLot, RECEIPT_DEFER_MS, type WaitOutcome } from '../../server/transports/parking.js';

const log = pino({ level: 'silent' });

/** Issue 8: a receipt (or a device's own echo) alone lets the poll wait for company; anything else wakes it. */
describe('parking lot: entries that may wait', () => {
  let bus: LocalBus;
  let lot: ParkingLot;
  const USER = 9;
  const receipt = { type: 'receipt', conversation: 'c1', user: 'bob', status: 'delivered', up_to: 1 };
  const message = { type: 'message', message: { id: 'm2' } };
  const publish = (head: number, event: Record<string, unknown>, echoOf?: string) =>
    bus.publishMany([[userChannel(USER), encodeHead(head, Date.now(), echoOf, JSON.stringify(event))]]);
  const settled = (p: Promise<WaitOutcome>) => Promise.race([p.then((o) => o.kind), new Promise((r) => setTimeout(() => r('pending'), 50))]);

  beforeEach(async () => {
    bus = new LocalBus({ log });
    lot = new ParkingLot(bus, log);
    lot.start();
    await lot.enter(USER);
  });
  afterEach(async () => {
    lot.leave(USER);
    await lot.stop();
    await bus.close();
  });

  it('a receipt alone wakes the poll only after a short wait, and then answers it from the carried events', async () => {
    const started = Date.now();
    const waiting = lot.wait(USER, 0, 10_000);
    await publish(1, receipt);
    expect(await settled(waiting)).to.equal('pending');
    expect((await waiting).kind).to.equal('wake');
    const waited = Date.now() - started;
    expect(waited).to.be.at.least(RECEIPT_DEFER_MS - 10).and.below(RECEIPT_DEFER_MS + 1_000);
    expect(lot.cached(USER, 0, 1)).to.deep.equal([receipt]);
  });

  it('a message after a waiting receipt wakes the poll at once, with both', async () => {
    const waiting = lot.wait(USER, 0, 10_000);
    await publish(1, receipt);
    expect(await settled(waiting)).to.equal('pending');
    await publish(2, message);
    expect(await settled(waiting)).to.equal('wake');
    expect(lot.cached(USER, 0, 2)).to.deep.equal([receipt, message]);
  });

  it("one device's echo waits only for that device: another device of the user wakes at once", async () => {
    const sender = lot.wait(USER, 0, 10_000, undefined, 'dev-a');
    const other = lot.wait(USER, 0, 10_000, undefined, 'dev-b');
    await publish(1, message, 'dev-a');
    expect(await settled(other)).to.equal('wake');
    expect(await settled(sender)).to.equal('pending');
    await publish(2, receipt); // the receipt for it: still nothing that needs the sender now
    expect(await settled(sender)).to.equal('pending');
    expect((await sender).kind).to.equal('wake'); // within the receipt's wait
    expect(lot.cached(USER, 0, 2)).to.deep.equal([message, receipt]);
  });
});
