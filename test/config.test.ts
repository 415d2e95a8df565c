import { expect } from 'chai';
import { loadConfig } from '../server/config.js';

describe('configuration defaults that matter for security', () => {
  /** A dyno's environment: Heroku sets DYNO, and the add-on DATABASE_URL (a node refuses to start without it there). */
  const heroku = { DYNO: 'web.1', DATABASE_URL: 'postgres://u@db.example/d', MASTER_KEY: 'ab'.repeat(32) };
  it('TRUST_PROXY is 0 when nothing says a proxy is in front, 1 on Heroku (DYNO set), and an explicit value wins', () => {
    expect(loadConfig({}).trustProxy).to.equal(0);
    expect(loadConfig(heroku).trustProxy).to.equal(1);
    expect(loadConfig({ ...heroku, TRUST_PROXY: '2' }).trustProxy).to.equal(2);
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).to.equal(1);
  });

  it('counts as production with NODE_ENV=production or on Heroku (then /metrics wants METRICS_TOKEN)', () => {
    expect(loadConfig({}).production).to.equal(false);
    expect(loadConfig({ NODE_ENV: 'production' }).production).to.equal(true);
    expect(loadConfig(heroku).production).to.equal(true);
  });

  it('passwords are hashed at scrypt N=2^17 and tokens live 30 days unless told otherwise', () => {
    const c = loadConfig({});
    expect(c.passwordCost).to.equal(17);
    expect(c.tokenTtlMs).to.equal(30 * 86_400_000);
    expect(() => loadConfig({ PASSWORD_COST: '30' })).to.throw(/PASSWORD_COST/);
  });
});
