import type { RequestHandler } from 'express';
import { errors } from '../core/errors.js';

/**
 * Text PostgreSQL cannot store, refused where it enters. PostgreSQL rejects U+0000 in any text
 * value (22021, "invalid byte sequence for encoding UTF8: 0x00"), and a lone UTF-16 surrogate has
 * no UTF-8 form at all (the driver would silently turn it into U+FFFD). Checked once at the edge,
 * so no store query, rate-limit key or sealed text ever sees either.
 */

// In a `u` regex a paired surrogate is one astral code point, so \p{Cs} matches only lone halves.
const LONE_SURROGATE = /\p{Cs}/u;

/** Why a string cannot be stored, or null when it can. */
export function textProblem(s: string): string | null {
  if (s.includes('\u0000')) return 'contains U+0000 (NUL)';
  if (LONE_SURROGATE.test(s)) return 'contains a lone UTF-16 surrogate';
  return null;
}

/** Bounded: a JSON body of at most BODY_LIMIT bytes nests far less deep than this. */
const MAX_DEPTH = 64;

/** The first place in a parsed value (body, query) holding text that cannot be stored, with the problem. */
export function findBadText(value: unknown, where: string, depth = 0): string | null {
  if (typeof value === 'string') {
    const problem = textProblem(value);
    return problem && `${where} ${problem}`;
  }
  if (typeof value !== 'object' || value === null || depth > MAX_DEPTH) return null;
  for (const [key, v] of Object.entries(value)) {
    const keyProblem = textProblem(key);
    if (keyProblem) return `a field name in ${where} ${keyProblem}`;
    const found = findBadText(v, Array.isArray(value) ? `${where}[${key}]` : `${where}.${key}`, depth + 1);
    if (found) return found;
  }
  return null;
}

/** Throw 400 bad_text when `value` holds text that cannot be stored. */
export function requireCleanText(value: unknown, where: string): void {
  const found = findBadText(value, where);
  if (found) throw errors.badRequest(found, 'bad_text');
}

/** The path's segments as routes see them (percent-decoded); a segment that does not decode stays as sent. */
function pathSegments(path: string): string[] {
  return path.split('/').map((seg) => {
    try {
      return decodeURIComponent(seg);
    } catch {
      return seg;
    }
  });
}

/**
 * Middleware after the body parsers: the decoded path segments (route parameters), the query
 * string and the parsed body must hold only storable text; otherwise 400 bad_text.
 */
export const cleanText: RequestHandler = (req, _res, next) => {
  requireCleanText(pathSegments(req.path), 'the path');
  requireCleanText(req.query, 'the query');
  requireCleanText(req.body, 'the body');
  next();
};
