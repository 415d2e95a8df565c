import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { pino } from 'pino';
import { migrate } from '../../server/store/migrate.js';
import { PostgresDatabase } from '../../server/store/postgres.js';
import { projectPath } from '../../server/paths.js';
import { PG_URL, dropSchema, requireServices, unique } from '../support/services.js';

const silent = pino({ level: 'silent' });

/**
 * A rolling deploy: the new release migrates the database while nodes of the previous release
 * (0fa9c9f) still serve, each connection holding named prepared statements of that release's
 * calls. Those nodes must keep sending, acknowledging and reading after the migration, on the same
 * connections: no `0A000 cached plan must not change result type`, no missing column.
 */
describe('a node of the previous release during a rolling deploy', function () {
  this.timeout(60_000);
  let schema: string;
  let old: pg.Client;

  before(async function () {
    await requireServices(this);
    schema = unique('roll_');
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    try {
      await admin.query(`CREATE SCHEMA "${schema}"`);
      await admin.query(`SET search_path = "${schema}"`);
      // The database as the previous release left it: its migrations 0001-0006, recorded.
      await admin.query(readFileSync(projectPath('test', 'fixtures', 'release-0fa9c9f.sql'), 'utf8'));
      await admin.query(`CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
      await admin.query(
        `INSERT INTO schema_migrations (version, name) SELECT v, 'previous release' FROM generate_series(1, 6) v`,
      );
    } finally {
      await admin.end();
    }
    old = new pg.Client({ connectionString: PG_URL, options: `-c search_path="${schema}"` });
    await old.connect();
  });

  after(async () => {
    await old?.end();
    if (schema) await dropSchema(schema);
  });

  // The previous release's statement texts, as its store sent them (named: prepared once per connection)
  const SEND = 'SELECT * FROM parley_send($1::text[], $2::text[], $3::bigint[], $4::bytea[], $5::text[], $6::jsonb[])';
  const ACK = 'SELECT * FROM parley_ack($1::bigint[], $2::text[], $3::bigint[])';
  const ADVANCE = 'SELECT * FROM parley_advance($1, $2::bigint[], $3::text[], $4::text[], $5::bigint[])';
  const CONVERSATION_FOR = `SELECT id, kind, title, wrapped_key, last_seq, created_at,
         EXISTS (SELECT 1 FROM members WHERE conversation_id = $1 AND user_id = $2) AS member
       FROM conversations WHERE id = $1`;
  const HEAD = `SELECT u.stream_seq AS head, a.acked_seq AS acked FROM users u JOIN acks a ON a.user_id = u.id WHERE u.id = $1`;

  async function run(name: string, text: string, values: unknown[]) {
    return (await old.query({ name, text, values })).rows;
  }

  it('keeps sending, acknowledging and reading on its prepared statements after the new release migrated', async () => {
    // Two users and their conversation, written as the previous release wrote them
    const [a, b] = (
      await old.query(`INSERT INTO users (name, pass_hash) VALUES ($1, 'h'), ($2, 'h') RETURNING id`, [unique('ra'), unique('rb')])
    ).rows.map((r) => Number(r.id));
    await old.query('INSERT INTO acks (user_id) VALUES ($1), ($2)', [a, b]);
    const conv = unique('d');
    await old.query(`INSERT INTO conversations (id, kind, direct_key, wrapped_key) VALUES ($1, 'direct', $2, '\\x00')`, [conv, `${a}:${b}`]);
    await old.query(`INSERT INTO members (conversation_id, user_id) VALUES ($1, $2), ($1, $3)`, [conv, a, b]);

    const send = (n: number) => run('send', SEND, [[conv], [unique('m')], [a], [Buffer.from(`body ${n}`)], [`c${n}`], [null]]);
    const first = await send(1);
    expect(first.find((r) => r.r_outcome === 'ok')).to.include({ r_created: true });
    expect((await run('ack', ACK, [[b], ['rb'], [2]])).length).to.be.at.least(0);
    await run('advance', ADVANCE, ['read', [b], ['rb'], [conv], [1]]);
    await run('conv', CONVERSATION_FOR, [conv, a]);
    await run('head', HEAD, [b]);

    // The new release migrates the same schema (functions re-created, new columns)
    const db = await PostgresDatabase.connect({ url: PG_URL, schema, log: silent, max: 2 });
    try {
      expect(await migrate(db, silent)).to.include(7);
    } finally {
      await db.close();
    }

    // The old node goes on, on the same connection and statements
    const second = await send(2);
    const ok = second.find((r) => r.r_outcome === 'ok')!;
    expect(ok).to.include({ r_created: true, r_seq: 2 });
    expect(second.filter((r) => r.r_outcome === 'head').map((r) => Number(r.r_user)).sort()).to.deep.equal([a, b].sort());
    const again = await send(2); // its retry with the same client_id: the first message again
    expect(again.find((r) => r.r_outcome === 'ok')).to.include({ r_created: false, r_seq: 2 });
    const head = Number((await run('head', HEAD, [b]))[0]!.head);
    const acked = await run('ack', ACK, [[b], ['rb'], [head]]);
    // bob's device got message 2: alice's stream gets the delivered receipt
    expect(acked.map((r) => Number(r.out_user))).to.include(a);
    const read = await run('advance', ADVANCE, ['read', [b], ['rb'], [conv], [2]]);
    expect(read.map((r) => Number(r.out_user))).to.include(a);
    expect((await run('conv', CONVERSATION_FOR, [conv, a]))[0]).to.include({ member: true });
  });
});
