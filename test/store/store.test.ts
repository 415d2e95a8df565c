import { expect } from 'chai';
import { pino } from 'pino';
import { listMigrations, migrate } from '../../server/store/migrate.js';
import { PostgresDatabase } from '../../server/store/postgres.js';
import { sharedEmbedded } from '../support/embedded.js';
import { PG_URL, dropSchema, requireServices, unique } from '../support/services.js';
import { storeContract } from './contract.js';

const silent = pino({ level: 'silent' });

storeContract('embedded PGlite', async () => ({ db: await sharedEmbedded(), release: async () => undefined }));

storeContract('PostgreSQL', async (ctx) => {
  await requireServices(ctx);
  const schema = unique('s_');
  const db = await PostgresDatabase.connect({ url: PG_URL, schema, log: silent });
  await migrate(db, silent);
  return {
    db,
    release: async () => {
      await db.close();
      await dropSchema(schema);
    },
  };
});

describe('migrations', function () {
  this.timeout(60_000);
  before(async function () {
    await requireServices(this);
  });

  it('two nodes migrating one fresh schema at once apply each migration exactly once', async () => {
    const schema = unique('m_');
    const [a, b] = await Promise.all([
      PostgresDatabase.connect({ url: PG_URL, schema, log: silent }),
      PostgresDatabase.connect({ url: PG_URL, schema, log: silent }),
    ]);
    try {
      const [ra, rb] = await Promise.all([migrate(a, silent), migrate(b, silent)]);
      const all = listMigrations().map((m) => m.version);
      expect([...ra, ...rb].sort()).to.deep.equal(all);
      expect(await migrate(a, silent)).to.deep.equal([]);
      const rows = await a.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).to.deep.equal(all);
    } finally {
      await a.close();
      await b.close();
      await dropSchema(schema);
    }
  });
});
