import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/**
 * Short-lived signed grants for file URLs, instead of the bearer token in `<img src>` and
 * `<a href>` (which cannot send headers): a URL lands in router and proxy logs and in browser
 * history, and a token there is the whole account for 30 days. A grant opens only files (of
 * conversations its user is a member of at download time, as ever) and only for about an hour.
 *
 * `u.exp.sig`: the user id, the expiry (Unix seconds) and an HMAC-SHA256 of both under a key
 * derived from the master key, so every node checks a grant another made.
 */
const TTL_S = 3_600;
/**
 * Expiries are rounded up to 10 minutes: the same grant (and so the same URL) is handed out for
 * that long, so a browser's cached copy of a picture is found again instead of fetched anew.
 */
const STEP_S = 600;

/** Grants for file downloads. */
export class FileGrants {
  private readonly key: Buffer;

  constructor(masterKey: Buffer, private readonly now: () => number = Date.now) {
    this.key = Buffer.from(hkdfSync('sha256', masterKey, Buffer.alloc(0), 'parley file grants v1', 32));
  }

  /** A grant for a user: valid at least TTL_S seconds from now. */
  issue(userId: number): { grant: string; expiresAt: Date } {
    const exp = Math.ceil((this.now() / 1000 + TTL_S) / STEP_S) * STEP_S;
    return { grant: `${userId}.${exp}.${this.sign(userId, exp)}`, expiresAt: new Date(exp * 1000) };
  }

  /** The user a grant was issued to, or null when it is malformed, forged or expired. */
  verify(grant: unknown): number | null {
    if (typeof grant !== 'string') return null;
    const m = /^(\d{1,15})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(grant);
    if (!m) return null;
    const userId = Number(m[1]);
    const exp = Number(m[2]);
    if (exp * 1000 <= this.now() || exp * 1000 > this.now() + (TTL_S + STEP_S) * 1000) return null;
    const want = Buffer.from(this.sign(userId, exp));
    const given = Buffer.from(m[3]!);
    return given.length === want.length && timingSafeEqual(given, want) ? userId : null;
  }

  private sign(userId: number, exp: number): string {
    return createHmac('sha256', this.key).update(`${userId}.${exp}`).digest('base64url');
  }
}
