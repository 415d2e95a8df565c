import { expect } from 'chai';
import pino from 'pino';
import { LocalBus } from '../../server/bus/local.js';
import { decodeWake, encodeHead, userChannel } from '../../server/core/notifier.js';
import { ParkingLot } from '../../server/transports/parking.js';

const log = pino({ level: 'silent' });

/** The in-process bus, with a way to play a pub/sub gap (the Redis bus resumes after reconnecting). */
class GappyBus extends LocalBus {
  resume: () => void = () => undefined;
  override onResume(listener: () => void): () => void {
    this.resume = listener;
    return () => undefined;
  }
}
const settle = () => new Promise((r) => setTimeout(r, 20));

describe('parking lot: wake-ups that carry their entry', () => {
  let bus: GappyBus;
  let lot: ParkingLot;
  let now: number;
  const USER = 7;
  const publish = (head: number, event?: Record<string, unknown>) =>
    bus.publishMany([[userChannel(USER), encodeHead(head, now, undefined, event && JSON.stringify(event))]]);

  beforeEach(async () => {
    now = 1_000_000;
    bus = new GappyBus({ log });
    lot = new ParkingLot(bus, log, () => now, undefined, undefined, 5_000);
    lot.start();
    await lot.enter(USER);
  });
  afterEach(async () => {
    lot.leave(USER);
    await lot.stop();
    await bus.close();
  });

  it('encodes a head with its event and decodes it; a broken event still wakes, without the event', () => {
    const event = { type: 'message', message: { id: 'm1', text: 'héllo\nthere' } };
    expect(decodeWake(encodeHead(5, 123, 'dev', JSON.stringify(event)))).to.deep.equal({
      kind: 'head', head: 5, sentAt: 123, echoOf: 'dev', event,
    });
    expect(decodeWake('5 123\n{not json')).to.deep.equal({ kind: 'head', head: 5, sentAt: 123 });
    expect(decodeWake('x 123')).to.equal(null);
  });

  it('answers from carried events only when every position up to the head came with one, in whatever order they arrived', async () => {
    const e = (n: number) => ({ type: 'receipt', n });
    await publish(3, e(3));
    await publish(2, e(2)); // another node's wake-up, published later
    await publish(4); // a head without its event (two entries in one commit, or too large)
    await settle();
    expect(lot.cached(USER, 1, 3)).to.deep.equal([e(2), e(3)]);
    expect(lot.cached(USER, 2, 3)).to.deep.equal([e(3)]);
    expect(lot.cached(USER, 0, 3)).to.equal(null); // position 1 never came with an event
    expect(lot.cached(USER, 1, 4)).to.equal(null); // position 4 must be read
    expect(lot.cached(USER, 3, 3)).to.equal(null); // nothing new
    expect(lot.head(USER)).to.equal(4);
    await publish(5, e(5));
    await settle();
    lot.markAcked(USER, 4); // a device confirmed up to 4: older carried events are dropped
    expect(lot.cached(USER, 4, 5)).to.deep.equal([e(5)]);
    expect(lot.cached(USER, 1, 3)).to.equal(null);
  });

  it('trusts a head read while the channel is live for a while, moves it with wake-ups, and forgets it after a pub/sub gap', async () => {
    expect(lot.knownHead(USER)).to.equal(null); // never read
    lot.verified(USER, 10, 9);
    expect(lot.knownHead(USER)).to.equal(10);
    expect(lot.acked(USER)).to.equal(9);
    await publish(11);
    await settle();
    expect(lot.knownHead(USER)).to.equal(11);
    now += 5_001;
    expect(lot.knownHead(USER)).to.equal(null); // too old: the next poll asks the database
    lot.verified(USER, 11, 11);
    expect(lot.knownHead(USER)).to.equal(11);
    bus.resume(); // wake-ups published during the gap were lost
    expect(lot.knownHead(USER)).to.equal(null);
  });

  it('parks at most 6 requests per user: a 7th answers the oldest, empty (issue 11 item 10: one token parked 300)', async () => {
    const outcomes: string[] = [];
    const waits = Array.from({ length: 9 }, (_, i) => lot.wait(USER, 0, 60_000).then((o) => void outcomes.push(`${i}:${o.kind}`)));
    await settle();
    expect(lot.parked).to.equal(6);
    expect(outcomes).to.deep.equal(['0:timeout', '1:timeout', '2:timeout']);
    await publish(1);
    await Promise.all(waits);
    expect(outcomes.slice(3).sort()).to.deep.equal(['3:wake', '4:wake', '5:wake', '6:wake', '7:wake', '8:wake']);
  });
});
