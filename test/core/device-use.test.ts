import { expect } from 'chai';
import { pino } from 'pino';
import { LocalBus } from '../../server/bus/local.js';
import { Accounts, DEVICE_USE_WRITE_MS } from '../../server/core/accounts.js';
import { Store } from '../../server/store/store.js';
import { sharedEmbedded } from '../support/embedded.js';
import { unique } from '../support/services.js';

const log = pino({ level: 'silent' });

/** A device's last use is written at most once a minute per token, not on every request. */
describe('accounts: device last use is coarse (issue 13 B)', function () {
  this.timeout(30_000);
  let store: Store;
  let bus: LocalBus;
  before(async () => {
    store = new Store(await sharedEmbedded());
    bus = new LocalBus({ log });
  });
  after(async () => bus?.close());

  it('a hundred requests within a minute write last_used_at once; the next minute writes it again, with the address', async () => {
    let t = Date.now();
    const writes: Array<string | null> = [];
    // The store as Accounts sees it, counting the device-use writes
    const counting = Object.create(store) as Store;
    counting.deviceUsed = async (hash, address) => {
      writes.push(address);
      return store.deviceUsed(hash, address);
    };
    const accounts = new Accounts(counting, bus, { passwordCost: 12 }, () => t);
    const { token } = await accounts.register(unique('dev'), 'correct horse battery', { name: 'laptop', address: '10.0.0.1' });
    for (let i = 0; i < 100; i++) {
      expect(await accounts.authenticate(token, '10.0.0.2')).to.not.equal(null);
      t += 100; // 10 s in all
    }
    expect(writes).to.deep.equal(['10.0.0.2']);
    t += DEVICE_USE_WRITE_MS;
    await accounts.authenticate(token, '10.0.0.3');
    expect(writes).to.deep.equal(['10.0.0.2', '10.0.0.3']);
    const user = (await store.userByName((await accounts.authenticate(token))!.name))!;
    const [device] = await store.devices(Number(user.id));
    expect(device).to.include({ name: 'laptop', address: '10.0.0.3' });
    expect(device!.lastUsedAt).to.be.an.instanceOf(Date);
  });
});
