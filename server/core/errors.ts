/** The one error class of Parley: an HTTP status and a stable machine-readable code. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra headers the HTTP layer sets (e.g. Retry-After on 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'AppError';
  }
}

/** The registry of error codes: one constructor each, so codes never drift between call sites. */
export const errors = {
  badRequest: (message: string, code = 'bad_request') => new AppError(400, code, message),
  badCursor: (message = 'cursor is malformed or from the future; poll again without since') =>
    new AppError(400, 'bad_cursor', message),
  unauthorized: (message = 'missing or invalid token') => new AppError(401, 'unauthorized', message),
  badCredentials: () => new AppError(401, 'bad_credentials', 'wrong name or password'),
  forbidden: (message = 'not allowed') => new AppError(403, 'forbidden', message),
  /** A bot token used for what its scope does not allow (docs/api.md, Bots and webhooks). */
  outOfScope: (message = 'this bot token may not do that') => new AppError(403, 'out_of_scope', message),
  notFound: (what = 'resource') => new AppError(404, 'not_found', `${what} not found`),
  conflict: (message: string, code = 'conflict') => new AppError(409, code, message),
  gone: (message: string, code = 'gone') => new AppError(410, code, message),
  tooLarge: (message = 'request body too large') => new AppError(413, 'too_large', message),
  unsupportedType: (message = 'unsupported content type') => new AppError(415, 'unsupported_type', message),
  unprocessable: (message: string, code = 'unprocessable') => new AppError(422, code, message),
  rateLimited: (retryAfterSeconds: number) =>
    new AppError(429, 'rate_limited', 'too many requests; retry later', {
      'Retry-After': String(Math.max(1, Math.ceil(retryAfterSeconds))),
    }),
  unavailable: (message = 'service unavailable', retryAfterSeconds = 2) =>
    new AppError(503, 'unavailable', message, { 'Retry-After': String(retryAfterSeconds) }),
};
