import { expect } from 'chai';
import { pino } from 'pino';
import { LocalBus } from '../../server/bus/local.js';
import { CARRY_MAX_BYTES, Notifier, decodeWake, encodeHead, userChannel } from '../../server/core/notifier.js';

/** The wake-up format and what the notifier publishes (in-process bus, no services). */
describe('wake-ups', () => {
  it('encode and decode a head, its device echo and its carried event; junk decodes to null', () => {
    const event = { type: 'message', message: { id: 'm1', text: 'hi\nthere' } };
    expect(decodeWake(encodeHead(7, 1234, 'dev1', JSON.stringify(event)))).to.deep.equal({ kind: 'head', head: 7, sentAt: 1234, echoOf: 'dev1', event });
    expect(decodeWake(encodeHead(8, 99))).to.deep.equal({ kind: 'head', head: 8, sentAt: 99 });
    expect(decodeWake('{"type":"typing","user":"ann"}')).to.deep.equal({ kind: 'ephemeral', event: { type: 'typing', user: 'ann' } });
    for (const junk of ['', 'abc', '-1 5', '0 5', '{not json', '[1,2]']) expect(decodeWake(junk), junk).to.equal(null);
    // a broken event still wakes: the poll reads the entry instead
    expect(decodeWake('9 5\n{broken')).to.deep.equal({ kind: 'head', head: 9, sentAt: 5 });
  });

  it('publishes one wake-up per user, carrying small events and leaving large ones to be read', async () => {
    const bus = new LocalBus({ log: pino({ level: 'silent' }) });
    const got = new Map<string, string>();
    for (const u of [1, 2]) await bus.subscribe(userChannel(u), (p) => got.set(userChannel(u), p));
    const notifier = new Notifier(bus, pino({ level: 'silent' }), () => 42);
    const small = { type: 'message', message: { text: 'short' } };
    const large = { type: 'message', message: { text: 'x'.repeat(CARRY_MAX_BYTES) } };
    notifier.wake(new Map([[1, 3], [2, 5]]), undefined, new Map([[1, small], [2, large]]));
    for (let i = 0; i < 50 && got.size < 2; i++) await new Promise((r) => setImmediate(r));
    expect(decodeWake(got.get(userChannel(1))!)).to.deep.equal({ kind: 'head', head: 3, sentAt: 42, event: small });
    expect(decodeWake(got.get(userChannel(2))!)).to.deep.equal({ kind: 'head', head: 5, sentAt: 42 });
    await bus.close();
  });
});
