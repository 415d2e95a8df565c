import { expect } from 'chai';
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { loadConfig } from '../../server/config.js';
import { openBus, postgresOptions } from '../../server/deps.js';
import { PostgresDatabase } from '../../server/store/postgres.js';
import { startStack } from '../support/stack.js';
import { unique } from '../support/services.js';
import { crossNodeFlow } from './flow.js';
import { makeCerts, requirePrograms, startPostgres, startTlsRedis, type Certs } from './servers.js';

const silent = pino({ level: 'silent' });

describe('Heroku-style add-ons over TLS: Redis with a self-signed certificate, PostgreSQL with ssl=on', function () {
  this.timeout(120_000);
  let certs: Certs;
  let redis: Awaited<ReturnType<typeof startTlsRedis>> | undefined;
  let postgres: Awaited<ReturnType<typeof startPostgres>> | undefined;
  const env = (extra: Record<string, string>) => ({
    MASTER_KEY: '11'.repeat(32),
    DATABASE_SCHEMA: unique('tls_'),
    REDIS_PREFIX: `parley-tls-${unique('')}:`,
    ...extra,
  });
  const pgUrl = (query: string) => `postgres://postgres@127.0.0.1:${postgres!.port}/postgres${query}`;
  /** Two nodes with these settings run the cross-node flow. */
  const flowWith = async (settings: Record<string, string>) => {
    const stack = await startStack({ backend: 'real', nodes: 2, env: env(settings) });
    try {
      await crossNodeFlow(stack);
    } finally {
      await stack.close();
    }
  };

  before(async function () {
    requirePrograms(this, ['openssl', 'redis-server', 'postgres']);
    certs = makeCerts();
    redis = await startTlsRedis(certs);
    postgres = await startPostgres({ ssl: certs });
  });
  after(async () => {
    await redis?.stop();
    await postgres?.stop();
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  it("two nodes run the flow with Heroku's settings: rediss:// with REDIS_TLS_REJECT_UNAUTHORIZED=0, DATABASE_URL with sslmode=require", async () => {
    await flowWith({ REDIS_URL: `rediss://127.0.0.1:${redis!.port}`, REDIS_TLS_REJECT_UNAUTHORIZED: '0', DATABASE_URL: pgUrl('?sslmode=require') });
  });

  it('on a dyno (DYNO set) a plain DATABASE_URL gets TLS without verification, as Heroku Postgres needs', async () => {
    await flowWith({ DYNO: 'web.1', REDIS_URL: `rediss://127.0.0.1:${redis!.port}`, REDIS_CA_FILE: certs.ca, DATABASE_URL: pgUrl('') });
  });

  it('both certificates are verified with REDIS_CA_FILE and DATABASE_SSL=verify-full with DATABASE_CA_FILE', async () => {
    await flowWith({
      REDIS_URL: `rediss://localhost:${redis!.port}`,
      REDIS_CA_FILE: certs.ca,
      DATABASE_URL: pgUrl(''),
      DATABASE_SSL: 'verify-full',
      DATABASE_CA_FILE: certs.ca,
    });
  });

  it('a self-signed Redis certificate without either setting stops the start with a message naming both', async () => {
    const config = loadConfig(env({ REDIS_URL: `rediss://127.0.0.1:${redis!.port}` }));
    let failure: Error | undefined;
    await openBus(config, silent).then(
      (bus) => bus.close(),
      (err: Error) => (failure = err),
    );
    expect(failure?.message).to.match(/REDIS_CA_FILE/).and.match(/REDIS_TLS_REJECT_UNAUTHORIZED=0/);
  });

  it('the database refuses an unencrypted connection, and verify-full refuses its certificate without the CA', async () => {
    const attempt = async (extra: Record<string, string>) => {
      const config = loadConfig(env(extra));
      const db = await PostgresDatabase.connect(postgresOptions({ ...config, databaseUrl: config.databaseUrl! }, silent)).catch((err: Error) => err);
      if (db instanceof Error) return db.message;
      await db.close();
      return 'connected';
    };
    expect(await attempt({ DATABASE_URL: pgUrl('') })).to.match(/no encryption|pg_hba/);
    expect(await attempt({ DATABASE_URL: pgUrl('?sslmode=verify-full') })).to.match(/certificate/);
    // libpq's meaning of require: encrypted, the certificate not checked (pg 8 alone would verify it)
    expect(await attempt({ DATABASE_URL: pgUrl('?sslmode=require') })).to.equal('connected');
    expect(await attempt({ DATABASE_URL: pgUrl('?sslmode=require'), DATABASE_CA_FILE: certs.ca })).to.equal('connected');
  });
});
