import { accessSync, constants } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseMasterKey } from './core/crypto.js';

/**
 * The only reader of process.env. Every setting is typed, validated and has its default beside it;
 * a bad value stops the start with a message naming the variable.
 */
const bool = z.enum(['on', 'off', 'true', 'false', '1', '0']).transform((v) => v === 'on' || v === 'true' || v === '1');
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const schema = z.object({
  PORT: int(0, 65535).default(3000),
  DATABASE_URL: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  /** Postgres schema to use (tests give each run its own). */
  DATABASE_SCHEMA: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a plain lower-case identifier').default('public'),
  /**
   * TLS to PostgreSQL: `off`; `require` (encrypted, the certificate not checked: libpq's meaning, and
   * what Heroku Postgres needs); `verify-ca` (checked against DATABASE_CA_FILE); `verify-full` (also the
   * host name). Unset: the URL's `sslmode`, else `require` on Heroku (DYNO set), else `off`.
   */
  DATABASE_SSL: z.enum(['off', 'disable', 'allow', 'prefer', 'require', 'no-verify', 'verify-ca', 'verify-full']).optional(),
  /** PEM file of the CA that signed the database's certificate (verify-ca, verify-full; with `require` it makes it verify-ca, as libpq does). */
  DATABASE_CA_FILE: z.string().optional(),
  /** Connections per node (20). Nodes × this, plus one-off commands, must stay under the database's limit. */
  DATABASE_POOL_SIZE: int(1, 1000).default(20),
  /** `on` behind PgBouncer in transaction mode: no startup search_path, no named prepared statements. */
  DATABASE_PGBOUNCER: bool.default(false),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must be a redis:// URL').optional(),
  /** `0` accepts a rediss:// server's certificate unchecked: Heroku Redis presents a self-signed one. */
  REDIS_TLS_REJECT_UNAUTHORIZED: bool.default(true),
  /** PEM file of the CA that signed the Redis server's certificate (checked instead of the system CAs). */
  REDIS_CA_FILE: z.string().optional(),
  /** Prefix of every Redis key and channel (tests give each run its own). */
  REDIS_PREFIX: z.string().max(64).regex(/^[^{}]*$/, 'must not contain { or } (a Redis Cluster hash tag)').default('parley:'),
  /** `on`: REDIS_URL is one node of a Redis Cluster (the others are discovered); sharded pub/sub on Redis 7+. */
  REDIS_CLUSTER: bool.default(false),
  MASTER_KEY: z.string().optional(),
  /** Master keys being rotated away from, comma-separated: they only unwrap keys not yet re-wrapped. */
  MASTER_KEY_PREVIOUS: z.string().optional(),
  DATA_DIR: z.string().default('./data'),
  BLOB_DIR: z.string().optional(),
  NODE_ID: z.string().min(1).max(128).default(`${hostname()}-${process.pid}`),
  PARLEY_DOMAIN: z.string().regex(/^[a-z0-9.-]+$/i, 'must be a host name').default('localhost'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `off` disables every rate limit (benchmarks). */
  RATE_LIMIT: bool.default(true),
  /** Failed logins allowed per address-and-name per 15 minutes (then a lockout of that pair, doubling each time). */
  LOGIN_ATTEMPTS: int(1, 10000).default(10),
  /** Failed logins allowed per address, whatever the names, per 15 minutes. */
  LOGIN_ATTEMPTS_PER_ADDRESS: int(1, 100_000).default(50),
  /** Direct conversations opened and groups created per user per hour. */
  CONVERSATIONS_PER_HOUR: int(1, 1_000_000).default(120),
  /** New BOSH sessions allowed per address per minute. */
  BOSH_SESSIONS_PER_MINUTE: int(1, 1_000_000).default(60),
  /** log2 of scrypt's N for password hashes (17: 128 MiB, OWASP's guidance); lower only for tests. */
  PASSWORD_COST: int(10, 18).default(17),
  /** A token unused for this many days expires (each use moves it forward). */
  TOKEN_TTL_DAYS: int(1, 3650).default(30),
  /** Seconds a request other than an upload may take to send its body (slow-body attacks). */
  BODY_TIMEOUT: int(1, 3600).default(60),
  /** Open HTTP connections per node at most (a parked request holds one). */
  MAX_CONNECTIONS: int(1, 1_000_000).default(10_000),
  /** Parked requests per user per node at most; a further one answers the oldest (empty). */
  PARKED_PER_USER: int(1, 1000).default(6),
  /** API requests allowed per user per minute. */
  REQUESTS_PER_MINUTE: int(1, 1_000_000).default(1200),
  /** Registrations allowed per address per hour. */
  REGISTRATIONS_PER_HOUR: int(1, 1_000_000).default(30),
  /** Largest JSON or form body, bytes. 64 KiB: a message text is at most 16 KiB. */
  BODY_LIMIT: int(1024, 10_000_000).default(65536),
  /** Largest upload, bytes (25 MB). */
  UPLOAD_LIMIT: int(1, 2_000_000_000).default(25_000_000),
  /** Largest image to decode, pixels (50 MP); sharp's own 268 MP lets a small PNG inflate past 1 GB. */
  IMAGE_PIXEL_LIMIT: int(1, 1_000_000_000).default(50_000_000),
  UPLOADS_PER_MINUTE: int(1, 1_000_000).default(30),
  S3_BUCKET: z.string().optional(),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().default('us-east-1'),
  /** Seconds without a heartbeat before a user is offline (60: a long-poll re-polls every ≤25 s, so two missed polls). */
  PRESENCE_TIMEOUT: int(1, 3600).default(60),
  /** Origins allowed to call the API and BOSH cross-origin; `*` for any. */
  CORS_ORIGINS: z.string().default('*'),
  /**
   * Proxies in front of the nodes that append to X-Forwarded-For (Heroku's router: 1; none: 0).
   * Default 0, or 1 when DYNO is set (on Heroku): with none in front, trusting one hop would let
   * a client's own X-Forwarded-For become its address.
   */
  TRUST_PROXY: int(0, 10).optional(),
  /** Set by Heroku on every dyno: the filesystem is ephemeral and each dyno has its own. */
  DYNO: z.string().optional(),
  NODE_ENV: z.string().optional(),
  /** When set, /metrics answers only `Authorization: Bearer METRICS_TOKEN` (set it where the nodes are public). */
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Move messages older than this many days out of the table into sealed archive blobs, hourly; unset: never automatically. */
  ARCHIVE_AFTER_DAYS: int(1, 36_500).optional(),
  /** `forever`, or `until-delivered`: empty a message and delete its files once every recipient has it. */
  RETENTION: z.enum(['forever', 'until-delivered']).default('forever'),
  /**
   * Days a stream entry is kept once the user's devices acknowledged it (30): older acknowledged
   * entries are deleted hourly. A device away longer resumes at the oldest entry kept.
   */
  EVENTS_RETENTION_DAYS: int(1, 36_500).default(30),
});

/** How a node talks TLS to PostgreSQL (see DATABASE_SSL). */
export type DatabaseSsl = { mode: 'off' } | { mode: 'require' | 'verify-ca' | 'verify-full'; caFile: string | undefined };

export type Config = {
  port: number;
  databaseUrl: string | undefined;
  databaseSchema: string;
  databaseSsl: DatabaseSsl;
  databasePoolSize: number;
  databasePgbouncer: boolean;
  redisUrl: string | undefined;
  redisTls: { rejectUnauthorized: boolean; caFile: string | undefined };
  redisPrefix: string;
  redisCluster: boolean;
  masterKey: string | undefined;
  previousMasterKeys: Buffer[];
  dataDir: string;
  blobDir: string;
  nodeId: string;
  domain: string;
  logLevel: string;
  rateLimit: boolean;
  loginAttempts: number;
  requestsPerMinute: number;
  registrationsPerHour: number;
  bodyLimit: number;
  uploadLimit: number;
  imagePixelLimit: number;
  uploadsPerMinute: number;
  s3: { bucket: string; endpoint: string | undefined; region: string } | undefined;
  corsOrigins: string[] | '*';
  trustProxy: number;
  metricsToken: string | undefined;
  /** NODE_ENV=production or on Heroku: /metrics is refused without METRICS_TOKEN. */
  production: boolean;
  loginAttemptsPerAddress: number;
  boshSessionsPerMinute: number;
  conversationsPerHour: number;
  passwordCost: number;
  tokenTtlMs: number;
  maxConnections: number;
  bodyTimeoutMs: number;
  parkedPerUser: number;
  presenceTimeoutMs: number;
  archiveAfterDays: number | undefined;
  retention: 'forever' | 'until-delivered';
  eventsRetentionDays: number;
  /** Heroku's dyno name (web.1, scheduler.1234), when running there. */
  dyno: string | undefined;
};

/** Read and validate the configuration; throws one Error listing every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  const lines = parsed.success ? [] : parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
  const master = cleaned['MASTER_KEY'];
  if (cleaned['DATABASE_URL'] && !master) {
    lines.push('  MASTER_KEY: required when DATABASE_URL is set (64 hex characters or base64 of 32 bytes)');
  }
  if (master) {
    try {
      parseMasterKey(master);
    } catch (err) {
      lines.push(`  MASTER_KEY: ${(err as Error).message}`);
    }
  }
  const previous = (cleaned['MASTER_KEY_PREVIOUS'] ?? '').split(',').map((k) => k.trim()).filter(Boolean);
  const previousMasterKeys: Buffer[] = [];
  for (const [i, k] of previous.entries()) {
    try {
      previousMasterKeys.push(parseMasterKey(k));
    } catch (err) {
      lines.push(`  MASTER_KEY_PREVIOUS: key ${i + 1}: ${(err as Error).message}`);
    }
  }
  if (cleaned['DYNO'] && !cleaned['DATABASE_URL']) {
    lines.push(
      '  DATABASE_URL: required on Heroku (DYNO is set): without it each dyno keeps its own embedded database and master key on an ephemeral disk, lost at every restart; add Heroku Postgres (heroku addons:create heroku-postgresql)',
    );
  }
  for (const name of ['DATABASE_CA_FILE', 'REDIS_CA_FILE']) {
    const file = cleaned[name];
    if (!file) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch {
      lines.push(`  ${name}: cannot read ${file}`);
    }
  }
  if (cleaned['DATABASE_PGBOUNCER'] && parsed.success && parsed.data.DATABASE_PGBOUNCER && parsed.data.DATABASE_SCHEMA !== 'public') {
    lines.push('  DATABASE_SCHEMA: must be public with DATABASE_PGBOUNCER=on (PgBouncer in transaction mode does not keep a search_path)');
  }
  if (!parsed.success || lines.length > 0) throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  const e = parsed.data;
  const dataDir = path.resolve(e.DATA_DIR);
  return {
    port: e.PORT,
    databaseUrl: e.DATABASE_URL,
    databaseSchema: e.DATABASE_SCHEMA,
    databaseSsl: databaseSsl(e.DATABASE_SSL, e.DATABASE_URL, e.DATABASE_CA_FILE, e.DYNO !== undefined),
    databasePoolSize: e.DATABASE_POOL_SIZE,
    databasePgbouncer: e.DATABASE_PGBOUNCER,
    redisUrl: e.REDIS_URL,
    redisTls: { rejectUnauthorized: e.REDIS_TLS_REJECT_UNAUTHORIZED, caFile: e.REDIS_CA_FILE },
    redisPrefix: e.REDIS_PREFIX,
    redisCluster: e.REDIS_CLUSTER,
    masterKey: e.MASTER_KEY,
    previousMasterKeys,
    dataDir,
    blobDir: path.resolve(e.BLOB_DIR ?? path.join(dataDir, 'blobs')),
    nodeId: e.NODE_ID,
    domain: e.PARLEY_DOMAIN.toLowerCase(),
    logLevel: e.LOG_LEVEL,
    rateLimit: e.RATE_LIMIT,
    loginAttempts: e.LOGIN_ATTEMPTS,
    requestsPerMinute: e.REQUESTS_PER_MINUTE,
    registrationsPerHour: e.REGISTRATIONS_PER_HOUR,
    bodyLimit: e.BODY_LIMIT,
    uploadLimit: e.UPLOAD_LIMIT,
    imagePixelLimit: e.IMAGE_PIXEL_LIMIT,
    uploadsPerMinute: e.UPLOADS_PER_MINUTE,
    s3: e.S3_BUCKET ? { bucket: e.S3_BUCKET, endpoint: e.S3_ENDPOINT, region: e.S3_REGION } : undefined,
    presenceTimeoutMs: e.PRESENCE_TIMEOUT * 1000,
    archiveAfterDays: e.ARCHIVE_AFTER_DAYS,
    retention: e.RETENTION,
    eventsRetentionDays: e.EVENTS_RETENTION_DAYS,
    dyno: e.DYNO,
    trustProxy: e.TRUST_PROXY ?? (e.DYNO ? 1 : 0),
    metricsToken: e.METRICS_TOKEN,
    production: e.NODE_ENV === 'production' || e.DYNO !== undefined,
    loginAttemptsPerAddress: e.LOGIN_ATTEMPTS_PER_ADDRESS,
    boshSessionsPerMinute: e.BOSH_SESSIONS_PER_MINUTE,
    conversationsPerHour: e.CONVERSATIONS_PER_HOUR,
    passwordCost: e.PASSWORD_COST,
    tokenTtlMs: e.TOKEN_TTL_DAYS * 86_400_000,
    maxConnections: e.MAX_CONNECTIONS,
    bodyTimeoutMs: e.BODY_TIMEOUT * 1000,
    parkedPerUser: e.PARKED_PER_USER,
    corsOrigins: e.CORS_ORIGINS === '*' ? '*' : e.CORS_ORIGINS.split(',').map((s) => s.trim()).filter(Boolean),
  };
}

/**
 * The TLS mode: DATABASE_SSL, else the URL's sslmode, else `require` on Heroku. Modes as libpq
 * means them, not as pg 8 does (it verifies on `require`, which Heroku's certificates fail).
 * `prefer` and `allow` are off: pg cannot fall back from TLS to plain as libpq does.
 */
function databaseSsl(setting: string | undefined, url: string | undefined, caFile: string | undefined, onHeroku: boolean): DatabaseSsl {
  let mode = setting;
  let ca = caFile;
  if (url && mode === undefined) {
    const params = new URL(url).searchParams;
    mode = params.get('sslmode') ?? undefined;
    ca ??= params.get('sslrootcert') ?? undefined;
  }
  mode ??= onHeroku ? 'require' : 'off';
  switch (mode) {
    case 'require':
    case 'no-verify':
      return { mode: ca && mode === 'require' ? 'verify-ca' : 'require', caFile: ca };
    case 'verify-ca':
    case 'verify-full':
      return { mode, caFile: ca };
    default:
      return { mode: 'off' };
  }
}

/** Warnings about a deployment that will lose data or misbehave, for the log at start. */
export function deploymentWarnings(config: Config): string[] {
  const out: string[] = [];
  if (config.dyno && !config.s3) {
    out.push(
      'S3_BUCKET is not set on Heroku: uploaded files and archives go to this dyno\'s ephemeral disk, are not seen by other dynos, and are LOST at every restart (at least daily). Set S3_BUCKET (and AWS credentials).',
    );
  }
  return out;
}
