import { expect } from 'chai';
import { pino } from 'pino';
import { LocalBus } from '../../server/bus/local.js';
import { Accounts } from '../../server/core/accounts.js';
import { hashing, hashPassword, verifyPassword } from '../../server/core/passwords.js';
import { Store } from '../../server/store/store.js';
import { sharedEmbedded } from '../support/embedded.js';
import { unique } from '../support/services.js';

const log = pino({ level: 'silent' });
const PASSWORD = 'correct horse battery';

/** The in-process bus, with a way to play a pub/sub gap (the Redis bus resumes after reconnecting). */
class GappyBus extends LocalBus {
  private listeners = new Set<() => void>();
  override onResume(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  resume(): void {
    for (const l of this.listeners) l();
  }
}

describe('accounts: password hashes and token lifetimes (issue 11 item 10)', function () {
  this.timeout(30_000);
  let store: Store;
  let bus: GappyBus;
  before(async () => {
    store = new Store(await sharedEmbedded());
    bus = new GappyBus({ log });
  });
  after(async () => bus?.close());

  const passHash = async (name: string) => (await store.userByName(name))!.pass_hash;

  it('new hashes use scrypt N=2^17 by default; a hash made at 2^15 still verifies', async () => {
    const hash = await hashPassword(PASSWORD);
    expect(hash.split('$').slice(0, 4)).to.deep.equal(['scrypt', '131072', '8', '1']);
    expect(await verifyPassword(PASSWORD, hash)).to.equal(true);
    const old = await hashPassword(PASSWORD, 15);
    expect(await verifyPassword(PASSWORD, old)).to.equal(true);
    expect(await verifyPassword('wrong password', old)).to.equal(false);
  });

  it('runs at most two hashes at once (128 MiB each at 2^17), the rest wait their turn', async () => {
    let peak = 0;
    const watch = setInterval(() => (peak = Math.max(peak, hashing().running)), 1);
    const hashes = await Promise.all(Array.from({ length: 6 }, () => hashPassword(PASSWORD, 14)));
    clearInterval(watch);
    expect(peak).to.equal(2);
    expect(hashing()).to.deep.equal({ running: 0, waiting: 0 });
    expect(new Set(hashes).size).to.equal(6);
  });

  it('a login with a hash of older parameters rehashes it at today\'s; the password keeps working', async () => {
    const name = unique('rehash');
    const before = new Accounts(store, bus, { passwordCost: 12 });
    await before.register(name, PASSWORD);
    expect((await passHash(name)).split('$')[1]).to.equal(String(2 ** 12));
    const now = new Accounts(store, bus, { passwordCost: 13 });
    expect(await now.check(name, 'wrong password')).to.equal(null);
    expect((await passHash(name)).split('$')[1]).to.equal(String(2 ** 12), 'a wrong password changes nothing');
    expect((await now.check(name, PASSWORD))?.name).to.equal(name);
    expect((await passHash(name)).split('$')[1]).to.equal(String(2 ** 13));
    expect((await now.check(name, PASSWORD))?.name).to.equal(name);
  });

  it('a token unused for TOKEN_TTL expires; one in use is refreshed', async () => {
    const accounts = new Accounts(store, bus, { passwordCost: 12, tokenTtlMs: 86_400_000 });
    const { token } = await accounts.register(unique('ttl'), PASSWORD);
    const { token: other } = await accounts.register(unique('ttl'), PASSWORD);
    const db = store.db;
    // two days without use
    await db.query(`UPDATE tokens SET created_at = now() - interval '2 days' WHERE hash = sha256($1::bytea)`, [Buffer.from(token)]);
    // five hours ago: alive, and moved forward when used
    await db.query(`UPDATE tokens SET created_at = now() - interval '5 hours' WHERE hash = sha256($1::bytea)`, [Buffer.from(other)]);
    const fresh = new Accounts(store, bus, { tokenTtlMs: 86_400_000 }); // no cache
    expect(await fresh.authenticate(token)).to.equal(null);
    expect(await fresh.authenticate(other)).to.not.equal(null);
    const [row] = await db.query<{ age: number }>(`SELECT extract(epoch FROM now() - created_at)::float AS age FROM tokens WHERE hash = sha256($1::bytea)`, [Buffer.from(other)]);
    expect(row!.age).to.be.below(60);
  });

  it('after a pub/sub gap the token cache is dropped: a logout announced in the gap takes effect at once', async () => {
    const accounts = new Accounts(store, bus, { passwordCost: 12 });
    await accounts.start();
    try {
      const { token } = await accounts.register(unique('gap'), PASSWORD);
      expect(await accounts.authenticate(token)).to.not.equal(null); // now cached
      // Logged out on another node; its announcement was lost with the connection.
      await store.db.query('DELETE FROM tokens WHERE hash = sha256($1::bytea)', [Buffer.from(token)]);
      expect(await accounts.authenticate(token)).to.not.equal(null, 'the cache still trusts it');
      bus.resume();
      expect(await accounts.authenticate(token)).to.equal(null);
    } finally {
      await accounts.stop();
    }
  });
});
