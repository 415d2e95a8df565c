import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * scrypt N=2^17, r=8, p=1 (OWASP's current guidance; it was 2^15 until issue 11): about 128 MiB
 * and 150-400 ms per hash on this class of machine. PASSWORD_COST lowers it only for tests and
 * benchmarks. Hashes made with other parameters still verify and are redone at the next login.
 */
export const DEFAULT_COST = 17;
const R = 8;
const P = 1;
/** Room for N=2^18 (256 MiB) and scrypt's own overhead. */
const MAXMEM = 300 * 1024 * 1024;
const KEYLEN = 32;

/**
 * Two hashes at a time per process: each takes 128 MiB and a thread of libuv's pool of four, which
 * disk I/O and DNS share. Four at once would be 512 MiB (a Heroku dyno's whole memory) and leave
 * no thread for files; the login limits bound how many wait.
 */
const MAX_CONCURRENT = 2;
let running = 0;
const queue: Array<() => void> = [];

async function derive(password: string, salt: Buffer, params: ScryptOptions): Promise<Buffer> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((r) => queue.push(r));
  running++;
  try {
    return await new Promise<Buffer>((resolve, reject) =>
      scrypt(password.normalize('NFKC'), salt, KEYLEN, { ...params, maxmem: MAXMEM }, (err, key) => (err ? reject(err) : resolve(key))),
    );
  } finally {
    running--;
    queue.shift()?.();
  }
}

/** Hashes running now (at most MAX_CONCURRENT) and waiting, for tests. */
export function hashing(): { running: number; waiting: number } {
  return { running, waiting: queue.length };
}

/** Hash a password: `scrypt$N$r$p$salt$hash`, parameters stored so they can be raised later. */
export async function hashPassword(password: string, cost = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(16);
  const N = 2 ** cost;
  const key = await derive(password, salt, { N, r: R, p: P });
  return ['scrypt', N, R, P, salt.toString('base64'), key.toString('base64')].join('$');
}

/** Whether a stored hash was made with other parameters than `cost` asks for (rehash it at login). */
export function needsRehash(stored: string, cost = DEFAULT_COST): boolean {
  const [scheme, n, r, p] = stored.split('$');
  return scheme !== 'scrypt' || Number(n) !== 2 ** cost || Number(r) !== R || Number(p) !== P;
}

/** Check a password against a stored hash in constant time. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const N = Number(n);
  // A stored hash is ours, but a corrupt one must not ask for gigabytes.
  if (!Number.isInteger(N) || N < 2 || N > 2 ** 18 || Number(r) !== R || Number(p) !== P) return false;
  const expected = Buffer.from(hash, 'base64');
  const key = await derive(password, Buffer.from(salt, 'base64'), { N, r: R, p: P });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * A hash to compare against when the name is unknown, so timing does not reveal which names
 * exist; made at the cost in use, so it takes as long as a real one.
 */
export function dummyHash(cost = DEFAULT_COST): string {
  return `scrypt$${2 ** cost}$${R}$${P}$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=`;
}
