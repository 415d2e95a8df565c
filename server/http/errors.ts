import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import type { Logger } from 'pino';
import { AppError, errors } from '../core/errors.js';

/** A JSONP callback name: an identifier path, nothing that could smuggle script. */
export const CALLBACK = /^[A-Za-z_$][\w$]{0,63}(\.[A-Za-z_$][\w$]{0,63}){0,3}$/;

/** Send a body as JSON, or as JSONP when the request asked with a valid callback. */
export function sendJson(res: Response, status: number, body: unknown): void {
  const cb = res.req.query['callback'];
  if (typeof cb === 'string' && CALLBACK.test(cb) && res.req.method === 'GET') {
    // JSONP cannot read a status: errors travel in the body with 200.
    res
      .status(200)
      .type('application/javascript')
      .setHeader('X-Content-Type-Options', 'nosniff')
      // JSONP exists for other origins (the client's fallback without CORS): let them load it.
      .setHeader('Cross-Origin-Resource-Policy', 'cross-origin')
      .send(`/**/${cb}(${JSON.stringify(body)});`);
    return;
  }
  res.status(status).json(body);
}

/** Map body-parser's own errors (bad JSON, too large, bad charset) onto Parley's codes. */
function fromParser(err: { type?: string; status?: number }): AppError | null {
  switch (err.type) {
    case 'entity.parse.failed':
      return errors.badRequest('request body is not valid JSON', 'bad_json');
    case 'entity.too.large':
      return errors.tooLarge();
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return errors.unsupportedType('unsupported body encoding');
    case 'request.aborted':
      return errors.badRequest('request aborted', 'aborted');
    default:
      return typeof err.status === 'number' && err.status >= 400 && err.status < 500
        ? new AppError(err.status, 'bad_request', 'bad request')
        : null;
  }
}

const OUTAGE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
// Postgres: shutting down, starting up, out of connections (class 08 is connection exceptions)
const OUTAGE_STATES = new Set(['57P01', '57P02', '57P03', '53300']);
const OUTAGE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|not queryable|Connection is closed|Stream isn't writeable|Reached the max retries/i;

/**
 * A failure of PostgreSQL or Redis (down, restarting, unreachable, out of connections) rather than
 * of the request: the client should retry, and nothing it was told had succeeded is affected.
 */
export function isOutage(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if (err instanceof AggregateError) return err.errors.some(isOutage); // every address of a host refused
  const { code, name, message } = err as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === 'string' && (OUTAGE_CODES.has(code) || OUTAGE_STATES.has(code) || /^08[0-9A-Z]{3}$/.test(code))) return true;
  if (name === 'MaxRetriesPerRequestError') return true;
  return typeof message === 'string' && OUTAGE_MESSAGES.test(message);
}

// Postgres data exceptions that only bad input causes: text it cannot store (22021, 22P05), a
// value that does not parse as its type (22P02), out of range (22003), too long (22001), bad
// date/time (22007, 22008). Input is checked at the edge; one slipping past is still the client's.
const BAD_INPUT_STATES = new Set(['22021', '22P05', '22P02', '22003', '22001', '22007', '22008']);

/** A database error caused by the request's own values (a check the edge missed), not by the server. */
export function isBadInput(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && BAD_INPUT_STATES.has(code);
}

/** A request's path as logs show it: a webhook's secret (the path is its credential) is left out. */
export function loggedPath(path: string): string {
  return path.replace(/^\/api\/hooks\/[^/]+/, '/api/hooks/:secret');
}

/**
 * The last middleware: every error becomes `{error: {code, message}}`. An outage of the database
 * or Redis is 503 with Retry-After; a value the database refused is 400; other unknown errors are
 * 500 and logged.
 */
export function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let known = err instanceof AppError ? err : fromParser(err as { type?: string; status?: number });
    if (!known && isOutage(err)) {
      log.warn({ err, method: req.method, url: loggedPath(req.path) }, 'a backing service is unavailable');
      known = errors.unavailable('the database or Redis is unavailable; retry shortly');
    } else if (!known && isBadInput(err)) {
      // warn: the client gets its 400, and the missing check at the edge gets noticed.
      log.warn({ err, method: req.method, url: loggedPath(req.path) }, 'the database refused a value of the request');
      known = errors.badRequest('a value of the request cannot be stored', 'bad_input');
    }
    if (res.headersSent) {
      // The path only: a query string may carry access_token (never logged).
      log.warn({ err, url: loggedPath(req.path) }, 'error after headers were sent');
      res.destroy(); // the client sees a cut answer, not one that never ends
      return;
    }
    if (known) {
      for (const [k, v] of Object.entries(known.headers)) res.setHeader(k, v);
      sendJson(res, known.status, { error: { code: known.code, message: known.message } });
      return;
    }
    log.error({ err, method: req.method, url: loggedPath(req.path) }, 'unexpected error');
    sendJson(res, 500, { error: { code: 'internal', message: 'internal error' } });
  };
}

/** 404 for any path no route took. */
export const notFound: RequestHandler = (req, _res, next) => next(errors.notFound(`${req.method} ${req.path}`));
