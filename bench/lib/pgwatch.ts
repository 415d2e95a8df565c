import pg from 'pg';

/**
 * The database side of "where the time goes": while the load runs, sample pg_stat_activity for the
 * nodes' connections (recognised by application_name, which the nodes' pg pools take from
 * PGAPPNAME) and count what each connection was doing; around the window, read the run's table
 * counters (rows inserted, updated, index and sequential scans) from pg_stat_user_tables.
 */

/** What the sampler saw. */
export type PgActivity = {
  samples: number;
  /** Average number of the nodes' connections in each state ("active: CPU", "active: Lock/transactionid", "idle in transaction", "idle"). */
  avgConnectionsByState: Record<string, number>;
  /** Statements most often seen active (or idle in transaction after them), share of active samples. */
  topActive: Array<{ query: string; share: number }>;
};

/** Per-table counters changed during the window. */
export type TableCounters = Record<string, { ins: number; upd: number; del: number; idxScan: number; seqScan: number; hotUpd: number }>;

/** A sampler of pg_stat_activity for one application_name prefix. */
export class PgWatch {
  private client: pg.Client;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private samples = 0;
  private byState = new Map<string, number>();
  private byQuery = new Map<string, number>();
  private activeSamples = 0;

  constructor(
    databaseUrl: string,
    private readonly appPrefix: string,
    private readonly schema: string,
  ) {
    this.client = new pg.Client({ connectionString: databaseUrl, application_name: 'parley-bench-watch' });
  }

  /** Connect. */
  async open(): Promise<void> {
    await this.client.connect();
  }

  /** Table counters of the run's schema now. */
  async tables(): Promise<TableCounters> {
    const rows = (
      await this.client.query(
        `SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, n_tup_hot_upd, coalesce(idx_scan, 0) AS idx_scan, coalesce(seq_scan, 0) AS seq_scan
         FROM pg_stat_user_tables WHERE schemaname = $1`,
        [this.schema],
      )
    ).rows;
    return Object.fromEntries(
      rows.map((r) => [r.relname, { ins: +r.n_tup_ins, upd: +r.n_tup_upd, del: +r.n_tup_del, hotUpd: +r.n_tup_hot_upd, idxScan: +r.idx_scan, seqScan: +r.seq_scan }]),
    );
  }

  /** Process ids of the Postgres backends serving the nodes (to read their CPU time from /proc). */
  async backendPids(): Promise<number[]> {
    const { rows } = await this.client.query('SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1', [`${this.appPrefix}%`]);
    return rows.map((r) => Number(r.pid));
  }

  /** Start sampling every `everyMs` (one query at a time; a slow sample delays the next). */
  start(everyMs: number): void {
    const tick = async () => {
      try {
        const { rows } = await this.client.query(
          `SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS q
           FROM pg_stat_activity WHERE application_name LIKE $1`,
          [`${this.appPrefix}%`],
        );
        this.samples++;
        for (const r of rows) {
          const state = r.state === 'active' ? `active: ${r.wait_event_type ? `${r.wait_event_type}/${r.wait_event}` : 'CPU'}` : String(r.state);
          this.byState.set(state, (this.byState.get(state) ?? 0) + 1);
          if (r.state === 'active' || r.state === 'idle in transaction') {
            const key = `${r.state === 'active' ? '' : '[idle in tx after] '}${r.q}`;
            this.byQuery.set(key, (this.byQuery.get(key) ?? 0) + 1);
            this.activeSamples++;
          }
        }
      } catch {
        // a failed sample is just a missing sample
      }
      if (this.timer !== undefined) this.timer = setTimeout(() => (this.running = tick()), everyMs);
    };
    this.timer = setTimeout(() => (this.running = tick()), everyMs);
  }

  /** Stop sampling and return what was seen. */
  async stop(): Promise<PgActivity> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    const avg = (n: number) => Math.round((n / Math.max(1, this.samples)) * 100) / 100;
    return {
      samples: this.samples,
      avgConnectionsByState: Object.fromEntries([...this.byState.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, avg(v)])),
      topActive: [...this.byQuery.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 12)
        .map(([query, n]) => ({ query, share: Math.round((n / Math.max(1, this.activeSamples)) * 1000) / 1000 })),
    };
  }

  /** Close the connection. */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    await this.client.end().catch(() => undefined);
  }
}

/** Counters changed between two readings (tables absent before count from zero). */
export function diffTables(a: TableCounters, b: TableCounters): TableCounters {
  const out: TableCounters = {};
  for (const [t, v] of Object.entries(b)) {
    const p = a[t] ?? { ins: 0, upd: 0, del: 0, hotUpd: 0, idxScan: 0, seqScan: 0 };
    out[t] = { ins: v.ins - p.ins, upd: v.upd - p.upd, del: v.del - p.del, hotUpd: v.hotUpd - p.hotUpd, idxScan: v.idxScan - p.idxScan, seqScan: v.seqScan - p.seqScan };
  }
  return out;
}
