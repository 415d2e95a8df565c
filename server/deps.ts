import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { Blobs } from './blobs/blobs.js';
import { openBlobs } from './blobs/open.js';
import type { Bus } from './bus/bus.js';
import { LocalBus } from './bus/local.js';
import { RedisBus, type RedisBusOptions } from './bus/redis.js';
import type { Config } from './config.js';
import { Core } from './core/core.js';
import { parseMasterKey } from './core/crypto.js';
import { Metrics } from './core/metrics.js';
import type { Database } from './store/db.js';
import { EmbeddedDatabase } from './store/embedded.js';
import { migrate } from './store/migrate.js';
import { PostgresDatabase, type PostgresOptions } from './store/postgres.js';
import { Store } from './store/store.js';
import { BoshManager } from './transports/bosh/binding.js';
import { ParkingLot } from './transports/parking.js';

/** Everything createApp needs, built from the configuration. */
export interface Deps {
  config: Config;
  log: Logger;
  db: Database;
  store: Store;
  bus: Bus;
  /** File storage (disk or S3), sealed per conversation by the files routes. */
  blobs: Blobs;
  core: Core;
  lot: ParkingLot;
  /** The node's BOSH connection manager (its held requests, its Bus channel). */
  bosh: BoshManager;
  metrics: Metrics;
}

/** The master key: MASTER_KEY, or in embedded mode one generated into DATA_DIR (with a warning). */
export function resolveMasterKey(config: Config, log: Logger): Buffer {
  if (config.masterKey) return parseMasterKey(config.masterKey);
  if (config.databaseUrl) throw new Error('MASTER_KEY is required with DATABASE_URL');
  const file = path.join(config.dataDir, 'master.key');
  try {
    return parseMasterKey(readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  writeFileSync(file, key.toString('hex') + '\n', { mode: 0o600 });
  log.warn({ file }, 'MASTER_KEY not set: generated one into the data directory; back it up, or set MASTER_KEY');
  return key;
}

/** PostgresDatabase.connect's options from the configuration (DATABASE_*). */
export function postgresOptions(config: Config & { databaseUrl: string }, log: Logger): PostgresOptions {
  return {
    url: config.databaseUrl,
    schema: config.databaseSchema,
    log,
    max: config.databasePoolSize,
    ssl: config.databaseSsl,
    pgbouncer: config.databasePgbouncer,
  };
}

/** Open the database (Postgres or embedded) and run the migrations it needs. */
export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  if (!config.databaseUrl) mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const db = config.databaseUrl
    ? await PostgresDatabase.connect(postgresOptions({ ...config, databaseUrl: config.databaseUrl }, log))
    : await EmbeddedDatabase.open(path.join(config.dataDir, 'db'));
  try {
    await migrate(db, log);
  } catch (err) {
    await db.close();
    const message = String((err as Error).message);
    if (/unsupported startup parameter/.test(message)) {
      throw new Error(`DATABASE_URL leads to PgBouncer (${message}): set DATABASE_PGBOUNCER=on, with DATABASE_SCHEMA=public`, { cause: err });
    }
    throw err;
  }
  return db;
}

/** TLS options for a rediss:// REDIS_URL (REDIS_TLS_REJECT_UNAUTHORIZED, REDIS_CA_FILE); none for redis://. */
export function redisTls(config: Config): ConnectionOptions | undefined {
  if (!config.redisUrl?.startsWith('rediss://')) return undefined;
  const { rejectUnauthorized, caFile } = config.redisTls;
  return { rejectUnauthorized, ...(caFile ? { ca: readFileSync(caFile, 'utf8') } : {}) };
}

/** RedisBus.connect's options from the configuration (REDIS_*). */
export function redisOptions(config: Config & { redisUrl: string }, log: Logger): RedisBusOptions {
  return { url: config.redisUrl, prefix: config.redisPrefix, log, tls: redisTls(config), cluster: config.redisCluster };
}

/** Open the bus: Redis when REDIS_URL is set, else in-process (one node only). */
export async function openBus(config: Config, log: Logger): Promise<Bus> {
  if (!config.redisUrl) return new LocalBus({ log });
  try {
    return await RedisBus.connect(redisOptions({ ...config, redisUrl: config.redisUrl }, log));
  } catch (err) {
    if (/self[- ]signed|unable to verify|UNABLE_TO_GET_ISSUER/i.test(String((err as Error).message))) {
      throw new Error(
        `Redis at REDIS_URL presents a certificate that cannot be verified (${(err as Error).message}): set REDIS_CA_FILE to its CA, or REDIS_TLS_REJECT_UNAUTHORIZED=0 to accept it unchecked (Heroku Redis)`,
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Assemble the dependencies over an open database and bus. Tests pass their own shared ones;
 * `close` stops what this built, and closes db and bus only when `owns` says so.
 */
export async function assemble(
  config: Config,
  log: Logger,
  db: Database,
  bus: Bus,
  opts: { masterKey?: Buffer; defaultMetrics?: boolean; blobs?: Blobs } = {},
): Promise<Deps> {
  const store = new Store(db);
  const blobs = opts.blobs ?? (await openBlobs(config));
  let metrics: Metrics | undefined;
  const lot = new ParkingLot(
    bus,
    log,
    Date.now,
    (s) => metrics?.wakeLatency.observe(s),
    (source) => metrics?.streamReads.inc({ source }),
    undefined,
    config.parkedPerUser,
  );
  metrics = new Metrics(() => lot.parked, opts.defaultMetrics ?? true, () => db.deadlocks);
  const core = new Core({
    store,
    bus,
    blobs,
    retention: config.retention,
    eventsRetentionMs: config.eventsRetentionDays * 86_400_000,
    archiveAfterMs: config.archiveAfterDays === undefined ? undefined : config.archiveAfterDays * 86_400_000,
    masterKey: opts.masterKey ?? resolveMasterKey(config, log),
    previousMasterKeys: config.previousMasterKeys,
    nodeId: config.nodeId,
    log,
    presenceTimeoutMs: config.presenceTimeoutMs,
    limits: {
      enabled: config.rateLimit,
      loginAttempts: config.loginAttempts,
      loginAttemptsPerAddress: config.loginAttemptsPerAddress,
      requestsPerMinute: config.requestsPerMinute,
      registrationsPerHour: config.registrationsPerHour,
      uploadsPerMinute: config.uploadsPerMinute,
      sessionsPerMinute: config.boshSessionsPerMinute,
      conversationsPerHour: config.conversationsPerHour,
    },
    passwordCost: config.passwordCost,
    uploadLimit: config.uploadLimit,
    imagePixelLimit: config.imagePixelLimit,
    tokenTtlMs: config.tokenTtlMs,
    onSent: (n) => metrics.messagesSent.inc(n),
  });
  await core.start(() => lot.holding());
  lot.start();
  const bosh = new BoshManager({ core, lot, bus, nodeId: config.nodeId, domain: config.domain, log });
  await bosh.start();
  return { config, log, db, store, bus, blobs, core, lot, bosh, metrics };
}

/**
 * The first step of a shutdown: every parked request (long polls, BOSH requests held before and
 * after login) is answered now, and later ones at once; resolves when the BOSH ones are answered.
 */
export async function answerHeld(deps: Deps): Promise<void> {
  deps.lot.closeAll();
  await deps.bosh.close();
}

/** Stop what assemble started (parked requests answered first). */
export async function disassemble(deps: Deps): Promise<void> {
  await answerHeld(deps);
  await deps.bosh.stop();
  await deps.lot.stop();
  await deps.core.stop();
  await deps.blobs.close();
}
