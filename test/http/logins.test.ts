import { expect } from 'chai';
import supertest from 'supertest';
import { PASSWORD, register } from '../support/client.js';
import { startStack, type Stack } from '../support/stack.js';

/** Issue 11 items 2 and 4: failed logins are counted before the password is checked, per address-and-name. */
describe('login limits (one rule for every door)', function () {
  this.timeout(60_000);
  let stack: Stack;
  let url: string;
  before(async () => {
    // TRUST_PROXY=1: the tests play clients at several addresses through X-Forwarded-For.
    stack = await startStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', LOGIN_ATTEMPTS: '10', LOGIN_ATTEMPTS_PER_ADDRESS: '40', TRUST_PROXY: '1' } });
    url = stack.nodes[0]!.url;
  });
  after(async () => stack?.close());

  const login = (name: string, password: string, address: string) =>
    supertest(url).post('/api/login').set('X-Forwarded-For', address).send({ name, password });

  it('30 concurrent wrong logins for one name with LOGIN_ATTEMPTS=10: at most 10 are checked (401), the rest 429', async () => {
    const bob = await register(url, 'bob');
    const answers = await Promise.all(Array.from({ length: 30 }, () => login(bob.name, 'wrong password', '198.51.100.1')));
    const statuses = answers.map((r) => r.status);
    expect(statuses.filter((s) => s === 401)).to.have.length.at.most(10);
    expect(statuses.filter((s) => s === 429)).to.have.length.at.least(20);
    expect(statuses.filter((s) => s !== 401 && s !== 429)).to.deep.equal([]);
    // the lockout also holds the right password back, from that address
    const locked = await login(bob.name, PASSWORD, '198.51.100.1').expect(429);
    expect(Number(locked.headers['retry-after'])).to.be.at.least(60);
  });

  it('a stranger cannot lock bob out: after 10 wrong passwords from the stranger\'s address, bob logs in from his own', async () => {
    const bob = await register(url, 'bob');
    for (let i = 0; i < 10; i++) await login(bob.name, 'wrong password', '198.51.100.2').expect(401);
    await login(bob.name, PASSWORD, '198.51.100.2').expect(429);
    const ok = await login(bob.name, PASSWORD, '203.0.113.20').expect(200);
    expect(ok.body.user.name).to.equal(bob.name);
  });

  it('one address trying many names is stopped by the per-address limit', async () => {
    const names = await Promise.all(Array.from({ length: 5 }, () => register(url, 'victim')));
    const statuses: number[] = [];
    for (let i = 0; i < 45; i++) statuses.push((await login(names[i % 5]!.name, 'wrong password', '198.51.100.3')).status);
    expect(statuses.slice(0, 40).every((s) => s === 401)).to.equal(true);
    expect(statuses.slice(40)).to.deep.equal([429, 429, 429, 429, 429]);
    // the victims themselves, elsewhere, are fine
    await login(names[0]!.name, PASSWORD, '203.0.113.21').expect(200);
  });

  it('a right password clears the address-and-name count: a user who mistypes now and then is never locked out', async () => {
    const carol = await register(url, 'carol');
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 9; i++) await login(carol.name, 'wrong password', '198.51.100.4').expect(401);
      await login(carol.name, PASSWORD, '198.51.100.4').expect(200);
    }
  });
});
