import { expect } from 'chai';
import { pino } from 'pino';
import { applyFunctions, listFunctions, listMigrations, migrate } from '../../server/store/migrate.js';
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
      expect([...ra, ...rb].sort((x, y) => x - y)).to.deep.equal(all); // by number: 10 after 7
      expect(await migrate(a, silent)).to.deep.equal([]);
      const rows = await a.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(rows.map((r) => r.version)).to.deep.equal(all);
    } finally {
      await a.close();
      await b.close();
      await dropSchema(schema);
    }
  });

  it('re-applies a changed function file, and never puts back an older revision (a node of the previous release restarting)', async () => {
    const schema = unique('m_');
    const db = await PostgresDatabase.connect({ url: PG_URL, schema, log: silent });
    try {
      await migrate(db, silent);
      expect(await applyFunctions(db, silent)).to.deep.equal([]); // nothing changed since
      const send = listFunctions().find((f) => f.name === 'send.sql')!;
      const body = async () =>
        (await db.query<{ src: string }>(`SELECT prosrc AS src FROM pg_proc WHERE proname = 'parley_send' AND pronamespace = $1::regnamespace`, [schema]))[0]!.src;
      const current = await body();
      // A later release's parley_send (here: one that sends nothing), recorded with a newer revision
      await db.exec(`CREATE OR REPLACE FUNCTION parley_send(p_conv text[], p_id text[], p_sender bigint[], p_body bytea[], p_client text[], p_attachment jsonb[])
        RETURNS TABLE (r_idx int, r_outcome text, r_id text, r_seq bigint, r_sender_name text, r_sent_at timestamptz, r_created boolean,
          r_body bytea, r_attachment jsonb, r_user bigint, r_head bigint, r_n int, r_conv text, r_msgseq bigint)
        LANGUAGE sql AS 'SELECT NULL::int, NULL, NULL, NULL::bigint, NULL, NULL::timestamptz, NULL::boolean, NULL::bytea, NULL::jsonb, NULL::bigint, NULL::bigint, NULL::int, NULL, NULL::bigint WHERE false'`);
      await db.query('UPDATE schema_functions SET revision = revision + 1, checksum = $1 WHERE name = $2', ['newer', send.name]);
      const later = await body();
      expect(later).to.not.equal(current);
      expect(await applyFunctions(db, silent)).to.deep.equal([]);
      expect(await body()).to.equal(later); // left as the newer release made it
      // The same revision with another text (a developer's edit of the file): applied again
      await db.query('UPDATE schema_functions SET revision = $1, checksum = $2 WHERE name = $3', [send.revision, 'edited', send.name]);
      expect(await applyFunctions(db, silent)).to.deep.equal([send.name]);
      expect(await body()).to.equal(current);
    } finally {
      await db.close();
      await dropSchema(schema);
    }
  });
});
