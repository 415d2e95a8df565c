import { LRUCache } from 'lru-cache';
import { createHash, randomBytes } from 'node:crypto';
import type { Bus } from '../bus/bus.js';
import { Credentials } from '../store/credentials.js';
import type { Store } from '../store/store.js';
import { errors } from './errors.js';
import { DEFAULT_COST, dummyHash, hashPassword, needsRehash, verifyPassword } from './passwords.js';

/** An authenticated user. */
export interface Principal {
  id: number;
  name: string;
  /** The device (token) the request came from, when known: a prefix of the token's hash. */
  device?: string;
  /** Set when the request came with a bot token: what it may do, and where (core/bots.ts). */
  bot?: BotGrant;
}

/** What a bot token may do: act for its owner in one conversation, reading and/or sending. */
export interface BotGrant {
  id: string;
  name: string;
  conversation: string;
  read: boolean;
  send: boolean;
}

/**
 * Bot tokens start with this, so they are told apart without a lookup: '.' is not in base64url,
 * so no user token can ever look like one (core/bots.ts makes and checks them).
 */
export const BOT_TOKEN_PREFIX = 'pbot.';

/** Who resolves bot tokens (core/bots.ts), beside the user tokens Accounts keeps. */
export interface BotTokens {
  authenticate(token: string): Promise<Principal | null>;
}

/**
 * How long a node trusts a cached token lookup; logout also clears it on every node at once via
 * the bus, and the whole cache is dropped when the bus comes back after a gap (a logout
 * announced meanwhile was lost).
 */
const TOKEN_CACHE_MS = 60_000;
/** A token is refreshed (its expiry moved forward) at most once an hour: one write, not one per request. */
const TOKEN_REFRESH_MS = 3_600_000;
/** 30 days (TOKEN_TTL_DAYS): a device unused for a month logs in again. */
export const DEFAULT_TOKEN_TTL_MS = 30 * 86_400_000;
const TOKEN_CACHE_LIMIT = 50_000;
/** The bus channel on which logouts are announced to every node. */
export const REVOKE_CHANNEL = 'tokens:revoked';

const NAME = /^[a-z0-9._-]{1,32}$/;

/** Normalise and check a user name: 1–32 of a-z 0-9 . _ -, case-insensitive. */
export function normaliseName(raw: unknown): string {
  if (typeof raw !== 'string') throw errors.badRequest('name is required', 'bad_name');
  const name = raw.trim().toLowerCase();
  if (!NAME.test(name)) throw errors.badRequest('name must be 1-32 of a-z 0-9 . _ -', 'bad_name');
  return name;
}

function checkPassword(raw: unknown): string {
  if (typeof raw !== 'string') throw errors.badRequest('password is required', 'bad_password');
  if (raw.length < 8 || raw.length > 256) throw errors.badRequest('password must be 8-256 characters', 'bad_password');
  return raw;
}

function tokenHash(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Accounts: registration, login, logout and token checks. Tokens are random and stored hashed. */
export class Accounts {
  private readonly cache = new LRUCache<string, { principal: Principal; until: number }>({ max: TOKEN_CACHE_LIMIT });
  /** Token → its hash (hex), so a cached token is not hashed again on every request. */
  private readonly hashes = new LRUCache<string, string>({ max: TOKEN_CACHE_LIMIT });
  private readonly onRevoke = (hashHex: string) => void this.cache.delete(hashHex);
  private offResume: (() => void) | null = null;
  private readonly credentials: Credentials;
  private readonly cost: number;
  private readonly tokenTtlMs: number;
  /** Bot tokens (their own table and prefix); set by Core. */
  botTokens: BotTokens | null = null;

  constructor(
    private readonly store: Store,
    private readonly bus: Bus,
    opts: { passwordCost?: number; tokenTtlMs?: number } = {},
    private readonly now: () => number = Date.now,
  ) {
    this.credentials = new Credentials(store.db);
    this.cost = opts.passwordCost ?? DEFAULT_COST;
    this.tokenTtlMs = opts.tokenTtlMs ?? DEFAULT_TOKEN_TTL_MS;
  }

  /** Listen for logouts made on other nodes; forget every cached token when the bus had a gap. */
  async start(): Promise<void> {
    await this.bus.subscribe(REVOKE_CHANNEL, this.onRevoke);
    this.offResume ??= this.bus.onResume(() => this.forget());
  }

  async stop(): Promise<void> {
    this.offResume?.();
    this.offResume = null;
    await this.bus.unsubscribe(REVOKE_CHANNEL, this.onRevoke);
  }

  /** Drop every cached token lookup: the next request of each token reads the database. */
  forget(): void {
    this.cache.clear();
    this.hashes.clear();
  }

  /** Register a new user and give it a first token (device). */
  async register(rawName: unknown, rawPassword: unknown): Promise<{ user: Principal; token: string }> {
    const name = normaliseName(rawName);
    const password = checkPassword(rawPassword);
    const row = await this.store.createUser(name, await hashPassword(password, this.cost));
    if (!row) throw errors.conflict('that name is taken', 'name_taken');
    const user = { id: Number(row.id), name: row.name };
    return { user, token: await this.issue(user) };
  }

  /**
   * Check a name and password; null when wrong. Not rate-limited: the doors call it through
   * Logins. A right password whose hash has older parameters is hashed again at today's.
   */
  async check(rawName: unknown, rawPassword: unknown): Promise<Principal | null> {
    if (typeof rawName !== 'string' || typeof rawPassword !== 'string' || rawPassword.length > 256) return null;
    const name = rawName.trim().toLowerCase();
    // A name no account can have (a NUL from SASL PLAIN, say) is not looked up: it would only make
    // the database refuse the query. The dummy hash keeps the answer as slow as a real miss.
    if (!NAME.test(name)) {
      await verifyPassword(rawPassword, dummyHash(this.cost));
      return null;
    }
    const row = await this.store.userByName(name);
    const ok = await verifyPassword(rawPassword, row?.pass_hash ?? dummyHash(this.cost));
    if (!row || !ok) return null;
    const user = { id: Number(row.id), name: row.name };
    if (needsRehash(row.pass_hash, this.cost)) await this.credentials.rehash(user.id, row.pass_hash, await hashPassword(rawPassword, this.cost));
    return user;
  }

  /** The user a token belongs to, or null. A bot token gives its owner, with the bot's grant. */
  async authenticate(token: string): Promise<Principal | null> {
    if (token.startsWith(BOT_TOKEN_PREFIX)) return this.botTokens ? this.botTokens.authenticate(token) : null;
    const known = this.hashes.get(token);
    const cached = known === undefined ? undefined : this.cache.get(known);
    if (cached && cached.until > this.now()) return cached.principal;
    if (!/^[A-Za-z0-9_-]{20,100}$/.test(token)) return null;
    const hash = tokenHash(token);
    const key = hash.toString('hex');
    const user = await this.credentials.liveToken(hash, this.tokenTtlMs);
    if (!user) return null;
    if (this.now() - user.refreshedAt.getTime() > TOKEN_REFRESH_MS) await this.credentials.refresh(hash);
    const principal = { id: Number(user.id), name: user.name, device: key.slice(0, 16) };
    this.cache.set(key, { principal, until: this.now() + TOKEN_CACHE_MS });
    this.hashes.set(token, key);
    return principal;
  }

  /** Revoke a token on every node. */
  async logout(token: string): Promise<void> {
    const hash = tokenHash(token);
    await this.store.deleteToken(hash);
    this.cache.delete(hash.toString('hex'));
    await this.bus.publish(REVOKE_CHANNEL, hash.toString('hex'));
  }

  /** A new device token for a user whose password was checked. */
  async issue(user: Principal): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await this.store.createToken(tokenHash(token), user.id);
    return token;
  }
}
