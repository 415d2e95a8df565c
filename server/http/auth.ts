import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { BotGrant, Principal } from '../core/accounts.js';
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

/**
 * What a bot token may reach, by route (the pattern the route was declared with, so every alias
 * of a path is judged alike): its conversation's messages (send: post, read: history) and the
 * event stream (read, filtered to its conversation). Everything else is refused, routes added
 * later included.
 */
export function botMay(bot: BotGrant, req: Request): boolean {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  if (route === '/conversations/:id/messages' && req.params['id'] === bot.conversation) {
    return req.method === 'POST' ? bot.send : req.method === 'GET' ? bot.read : false;
  }
  if (route === '/events') return bot.read && (req.method === 'GET' || req.method === 'POST');
  return false;
}

/**
 * Authenticate, rate-limit per user, and count the request as a presence heartbeat. A bot token
 * passes only where its scope allows (403 out_of_scope), and is no heartbeat of its owner.
 */
export function requireUser(core: Core): RequestHandler {
  return async (req: Request, res: Response, next: NextFunction) => {
    const token = tokenOf(req);
    if (!token) throw errors.unauthorized();
    const user = await core.accounts.authenticate(token);
    if (!user) throw errors.unauthorized();
    if (user.bot && !botMay(user.bot, req)) throw errors.outOfScope(`bot token \`${user.bot.name}\` may not ${req.method} ${req.originalUrl.split('?')[0]}`);
    core.limits.request(user.id);
    res.locals['user'] = user;
    res.locals['token'] = token;
    if (!user.bot) core.presence.touch(user.id);
    next();
  };
}
