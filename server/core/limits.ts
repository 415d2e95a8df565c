/**
 * Every rate limit of Parley in one place, for every door (the JSON API, BOSH, the file routes):
 * the keys, their windows and what counts. Shared counters live on the bus (all nodes see them);
 * the per-user request budget is per node, in memory, since it is checked on every request.
 */
import type { Bus } from '../bus/bus.js';
import { errors } from './errors.js';

/** The limits, from the configuration. `enabled: false` (RATE_LIMIT=off) turns every one off. */
export interface LimitSettings {
  enabled: boolean;
  /** Failed logins per address-and-name per 15 minutes (LOGIN_ATTEMPTS). */
  loginAttempts: number;
  /** Failed logins per address, any names, per 15 minutes (LOGIN_ATTEMPTS_PER_ADDRESS). */
  loginAttemptsPerAddress: number;
  /** API requests and BOSH stanzas per user per minute (REQUESTS_PER_MINUTE). */
  requestsPerMinute: number;
  registrationsPerHour: number;
  uploadsPerMinute: number;
  /** New BOSH sessions per address per minute (BOSH_SESSIONS_PER_MINUTE). */
  sessionsPerMinute: number;
  /** Conversations a user opens or creates per hour (CONVERSATIONS_PER_HOUR). */
  conversationsPerHour: number;
}

/** Defaults for tests and tools that build a core without a configuration: limits off. */
export const NO_LIMITS: LimitSettings = {
  enabled: false,
  loginAttempts: 10,
  loginAttemptsPerAddress: 50,
  requestsPerMinute: 1200,
  registrationsPerHour: 30,
  uploadsPerMinute: 30,
  sessionsPerMinute: 60,
  conversationsPerHour: 120,
};

/** 15 minutes: the window of failed logins, and the first lockout of an address-and-name pair. */
export const LOGIN_WINDOW_MS = 15 * 60_000;
/**
 * Each further lockout of the same pair within a day doubles (15 min, 30, 60, … at most 24 h):
 * a guesser that waits out the window and tries again gets slower and slower.
 */
const LOCKOUT_MAX_MS = 24 * 3_600_000;
const STRIKES_WINDOW_MS = 24 * 3_600_000;

/** The name as the login counters know it: what Accounts looks up, bounded (an attacker picks it). */
export function loginName(raw: unknown): string {
  return typeof raw === 'string' ? raw.trim().toLowerCase().slice(0, 64) : '';
}

/**
 * A fixed-window counter per key, in this node's memory: cheap enough for every request. Limits
 * that matter across nodes (failed logins, registrations) use the bus's shared counters instead.
 */
export class WindowLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();
  constructor(
    private readonly limit: number,
    private readonly windowMs: number,
    private readonly enabled: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Count n hits; throws 429 with Retry-After when over the limit. */
  hit(key: string, n = 1): void {
    if (!this.enabled) return;
    const t = this.now();
    let w = this.windows.get(key);
    if (!w || t - w.start >= this.windowMs) {
      if (this.windows.size > 100_000) this.prune(t);
      w = { start: t, count: 0 };
      this.windows.set(key, w);
    }
    w.count += n;
    if (w.count > this.limit) throw errors.rateLimited((w.start + this.windowMs - t) / 1000);
  }

  private prune(t: number): void {
    for (const [k, w] of this.windows) if (t - w.start >= this.windowMs) this.windows.delete(k);
  }
}

/** A login attempt counted before the password is checked; settle it with the outcome. */
export interface LoginTicket {
  /** The password was right: the pair's failures are forgotten and the address gets its attempt back. */
  succeeded(): Promise<void>;
  /** The password was wrong: the attempt stays counted; the last allowed one starts a lockout. */
  failed(): Promise<void>;
}

const NOOP_TICKET: LoginTicket = { succeeded: async () => undefined, failed: async () => undefined };

/** Rate limits over the bus. */
export class Limits {
  private readonly perUser: WindowLimiter;

  constructor(private readonly bus: Bus, readonly settings: LimitSettings, private readonly now: () => number = Date.now) {
    this.perUser = new WindowLimiter(settings.requestsPerMinute, 60_000, settings.enabled, now);
  }

  /** One API request or BOSH stanza (n of them) of a user: REQUESTS_PER_MINUTE, per node. */
  request(userId: number, n = 1): void {
    this.perUser.hit(`u:${userId}`, n);
  }

  /** A registration from an address: REGISTRATIONS_PER_HOUR, shared. */
  register(address: string): Promise<void> {
    return this.count(`rl:register:${address}`, this.settings.registrationsPerHour, 3_600_000);
  }

  /** An upload of a user: UPLOADS_PER_MINUTE, shared. */
  upload(userId: number): Promise<void> {
    return this.count(`rl:upload:${userId}`, this.settings.uploadsPerMinute, 60_000);
  }

  /**
   * A user opening a direct conversation or creating a group: CONVERSATIONS_PER_HOUR, shared.
   * Groups were unlimited in number, and anyone may open a chat with any named user.
   */
  conversation(userId: number): Promise<void> {
    return this.count(`rl:conv:${userId}`, this.settings.conversationsPerHour, 3_600_000);
  }

  /** A new BOSH session from an address: BOSH_SESSIONS_PER_MINUTE, shared. */
  boshSession(address: string): Promise<void> {
    return this.count(`rl:bosh:new:${address}`, this.settings.sessionsPerMinute, 60_000);
  }

  /**
   * Reserve a login attempt of `rawName` from `address`, before the password is checked: the
   * counters are incremented first, atomically on the bus, so concurrent attempts cannot all pass
   * a check made before any of them was counted. Throws 429 while the pair is locked out or
   * either counter is over its limit. Failures count per address-and-name, so a stranger
   * elsewhere cannot lock a user out, and per address, so one address cannot try many names.
   */
  async reserveLogin(rawName: unknown, address: string): Promise<LoginTicket> {
    if (!this.settings.enabled) return NOOP_TICKET;
    const pair = `${address}|${loginName(rawName)}`;
    const pairKey = `rl:login:p:${pair}`;
    const addressKey = `rl:login:a:${address}`;
    const lockKey = `rl:login:lock:${pair}`;
    const until = Number((await this.bus.get(lockKey)) ?? 0);
    if (until > this.now()) throw errors.rateLimited((until - this.now()) / 1000);
    const [forPair, forAddress] = await Promise.all([
      this.bus.incr(pairKey, LOGIN_WINDOW_MS),
      this.bus.incr(addressKey, LOGIN_WINDOW_MS),
    ]);
    if (forPair > this.settings.loginAttempts || forAddress > this.settings.loginAttemptsPerAddress) {
      throw errors.rateLimited(LOGIN_WINDOW_MS / 1000);
    }
    return {
      succeeded: async () => {
        await Promise.all([this.bus.del(pairKey), this.bus.incr(addressKey, LOGIN_WINDOW_MS, -1)]);
      },
      failed: async () => {
        if (forPair < this.settings.loginAttempts) return;
        const strikes = await this.bus.incr(`rl:login:strikes:${pair}`, STRIKES_WINDOW_MS);
        const ms = Math.min(LOGIN_WINDOW_MS * 2 ** Math.min(strikes - 1, 10), LOCKOUT_MAX_MS);
        await this.bus.set(lockKey, String(this.now() + ms), ms);
      },
    };
  }

  /** Count a hit on a counter shared by all nodes; 429 once it passes limit. */
  private async count(key: string, limit: number, windowMs: number): Promise<void> {
    if (!this.settings.enabled) return;
    if ((await this.bus.incr(key, windowMs)) > limit) throw errors.rateLimited(windowMs / 1000);
  }
}
