import { expect } from 'chai';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../server/config.js';
import { openDatabase } from '../../server/deps.js';
import { multinodeSuite } from '../e2e/multinode.js';
import { PG_URL, requireServices, unique } from '../support/services.js';
import { startStack } from '../support/stack.js';
import { crossNodeFlow } from './flow.js';
import { requirePrograms, startPgbouncer } from './servers.js';

/** Run a statement on the test PostgreSQL itself (not through PgBouncer). */
async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('through PgBouncer in transaction mode (DATABASE_PGBOUNCER=on)', function () {
  this.timeout(120_000);
  // A database of its own: behind PgBouncer the schema is public
  const dbname = unique('parley_pgb_');
  const env: Record<string, string> = {};
  let bouncer: Awaited<ReturnType<typeof startPgbouncer>> | undefined;

  before(async function () {
    requirePrograms(this, ['pgbouncer']);
    await requireServices(this);
    await admin(`CREATE DATABASE ${dbname}`);
    const u = new URL(PG_URL);
    bouncer = await startPgbouncer({ host: u.hostname, port: Number(u.port || 5432), dbname });
    Object.assign(env, {
      DATABASE_URL: `postgres://postgres@127.0.0.1:${bouncer.port}/parley`,
      DATABASE_PGBOUNCER: 'on',
      DATABASE_SCHEMA: 'public',
    });
  });
  after(async () => {
    await bouncer?.stop();
    await admin(`DROP DATABASE IF EXISTS ${dbname} WITH (FORCE)`);
  });

  it('two nodes run the flow, their statements spread over a few shared server connections', async () => {
    const stack = await startStack({ backend: 'real', nodes: 2, env });
    try {
      await crossNodeFlow(stack);
      // The same work again, so that statements land on server connections another node prepared nothing on
      await crossNodeFlow(stack);
    } finally {
      await stack.close();
    }
  });

  it('refuses DATABASE_PGBOUNCER=on with a schema other than public, naming DATABASE_SCHEMA', async () => {
    const failure = await startStack({ backend: 'real', env: { ...env, DATABASE_SCHEMA: 'elsewhere' } }).then(
      async (s) => {
        await s.close();
        return 'started';
      },
      (err: Error) => err.message,
    );
    expect(failure).to.match(/DATABASE_SCHEMA: must be public with DATABASE_PGBOUNCER=on/);
  });

  it('without DATABASE_PGBOUNCER the start stops with a message naming it', async () => {
    const failure = await openDatabase(loadConfig({ ...env, DATABASE_PGBOUNCER: 'off', MASTER_KEY: '55'.repeat(32) }), pino({ level: 'silent' })).then(
      async (db) => {
        await db.close();
        return 'started';
      },
      (err: Error) => err.message,
    );
    expect(failure).to.match(/set DATABASE_PGBOUNCER=on/);
  });

  multinodeSuite('the multinode suite through PgBouncer', env);
});
