import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Principal } from '../core/accounts.js';
import type { Core } from '../core/core.js';
import { errors } from '../core/errors.js';

/** The bearer token of a request: Authorization header, or access_token in the query or form body. */
export function tokenOf(req: Request): string | null {
  const header = req.headers.authorization;
  if (header) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    return m ? m[1]! : null;
  }
  const q = req.query['access_token'];
  if (typeof q === 'string' && q) return q;
  const b = (req.body as Record<string, unknown> | undefined)?.['access_token'];
  return typeof b === 'string' && b ? b : null;
}

/** The client's address for the per-address limits (Express's req.ip under TRUST_PROXY). */
export function addressOf(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? 'unknown';
}

/** The authenticated user of a request that passed requireUser. */
export function userOf(res: Response): Principal {
  return res.locals['user'] as Principal;
}

/** Authenticate, rate-limit per user, and count the request as a presence heartbeat. */
export function requireUser(core: Core): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const token = tokenOf(req);
    if (!token) throw errors.unauthorized();
    const user = await core.accounts.authenticate(token, addressOf(req));
    if (!user) throw errors.unauthorized();
    core.limits.request(user.id);
    res.locals['user'] = user;
    res.locals['token'] = token;
    core.presence.touch(user.id);
    next();
  };
}
