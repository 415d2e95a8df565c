import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { FileGrants } from '../../server/core/file-grants.js';

describe('file grants', () => {
  it('a grant is checked by every node with the same master key, and stops working after its hour', () => {
    let now = Date.UTC(2026, 0, 1, 12, 1, 0);
    const key = randomBytes(32);
    const a = new FileGrants(key, () => now);
    const b = new FileGrants(key, () => now);
    const { grant, expiresAt } = a.issue(42);
    expect(b.verify(grant)).to.equal(42);
    expect(new FileGrants(randomBytes(32), () => now).verify(grant)).to.equal(null); // another deployment
    // the same grant for ten minutes: the browser's cached pictures keep their URLs
    now += 5 * 60_000;
    expect(a.issue(42).grant).to.equal(grant);
    now = expiresAt.getTime() + 1;
    expect(b.verify(grant)).to.equal(null);
    expect(a.verify(`43${grant.slice(2)}`)).to.equal(null); // another user's id with this signature
  });
});
