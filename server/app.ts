import { timingSafeEqual } from 'node:crypto';
import cors from 'cors';
import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Deps } from './deps.js';
import { apiRouter } from './http/api.js';
import { errorHandler, notFound } from './http/errors.js';
import { projectPath } from './paths.js';
import { filesRouter } from './http/files.js';
import { joinPageRouter } from './http/routes-groups.js';
import { bodyDeadline } from './http/server.js';
import { cleanText } from './http/text.js';
import { boshRouter } from './transports/bosh/router.js';
import { hostMetaRouter } from './http/host-meta.js';
import { uploadSlotsRouter } from './http/upload-slots.js';

const PUBLIC_DIR = projectPath('public');

/**
 * CORS for the API: allowed origins from configuration (`*` or a list); tokens travel in headers,
 * not cookies, so credentials are never allowed. A preflight is answered 204 here.
 */
function apiCors(origins: string[] | '*'): express.RequestHandler {
  return cors({
    origin: origins,
    methods: ['GET', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    allowedHeaders: ['Authorization', 'Content-Type'],
    maxAge: 86_400, // a day: the allowed methods and headers change only with a release
  });
}

/** Whether an Authorization header is `Bearer <expected>` (compared in constant time). */
function bearerIs(header: string | undefined, expected: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(expected);
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * API answers are one user's data: no cache, shared proxies above all, may keep them (file
 * downloads replace this with their own private caching).
 */
const noStore: express.RequestHandler = (_req, res, next) => {
  res.setHeader('Cache-Control', 'no-store');
  next();
};

/** Build the Express app over its dependencies. It never listens: main.ts and the tests do. */
export function createApp(deps: Deps): Express {
  const { config, log, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  // No automatic ETag: a hash of every API answer costs CPU and buys nothing (answers are
  // per-user and not cached); files set their own.
  app.set('etag', false);
  // The client's address, for the per-address limits: TRUST_PROXY hops of X-Forwarded-For are the
  // proxies' own (Heroku's router, nginx), counted from the right. Never `true`: that takes the
  // left-most entry, which the client writes itself.
  app.set('trust proxy', config.trustProxy);
  app.use(bodyDeadline(config.bodyTimeoutMs));
  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          defaultSrc: ["'self'"],
          imgSrc: ["'self'", 'data:', 'blob:'],
          connectSrc: ["'self'"],
          scriptSrc: ["'self'"],
          styleSrc: ["'self'"],
          objectSrc: ["'none'"],
          frameAncestors: ["'none'"],
        },
      },
      crossOriginResourcePolicy: { policy: 'same-site' },
    }),
  );
  app.use((req, res, next) => {
    res.on('finish', () => {
      const route = (req.route as { path?: string } | undefined)?.path ?? 'other';
      metrics.httpRequests.inc({ route: `${req.method} ${req.baseUrl}${route}`, status: `${Math.floor(res.statusCode / 100)}xx` });
    });
    next();
  });

  app.get('/healthz', (_req, res) => void res.json({ ok: true }));
  app.get('/readyz', async (_req, res) => {
    const [db, bus] = await Promise.all([deps.db.ping(), deps.bus.ping()]);
    res.status(db && bus ? 200 : 503).json({ ok: db && bus, database: db, bus });
  });
  app.get('/metrics', async (req, res) => {
    // In production (NODE_ENV=production, or on Heroku) the metrics are never public: without
    // METRICS_TOKEN they are refused to everyone.
    if (!config.metricsToken && config.production) {
      res.status(403).json({ error: { code: 'forbidden', message: 'set METRICS_TOKEN to read /metrics in production' } });
      return;
    }
    if (config.metricsToken && !bearerIs(req.headers.authorization, config.metricsToken)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      res.status(401).json({ error: { code: 'unauthorized', message: 'metrics need Authorization: Bearer METRICS_TOKEN' } });
      return;
    }
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  const parsers = [
    express.json({ limit: config.bodyLimit, type: ['application/json', 'application/*+json'] }),
    express.urlencoded({ extended: false, limit: config.bodyLimit, parameterLimit: 200 }),
  ];
  const api = apiRouter(deps);
  const files = filesRouter({ config, core: deps.core, db: deps.db, blobs: deps.blobs, log }, api.auth);
  app.use('/api', apiCors(config.corsOrigins), noStore, ...parsers, cleanText, api.router, files);
  app.use('/api', notFound);

  app.use(boshRouter(deps)); // BOSH (XEP-0124/0206): POST /http-bind and /bosh
  app.use(hostMetaRouter()); // XEP-0156: /.well-known/host-meta(.json) point at /http-bind
  app.use(uploadSlotsRouter(deps.core)); // XEP-0363: PUT /upload/:id/:secret/:name

  app.use(joinPageRouter()); // /join/<code>: invite links open the web client
  // parley.js is the embeddable client (docs/client.md): pages of other sites load it.
  app.get('/parley.js', (_req, res, next) => {
    res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
    next();
  });
  app.use(express.static(PUBLIC_DIR, { index: 'index.html', maxAge: '1h' }));
  app.use(notFound);
  app.use(errorHandler(log.child({ module: 'http' })));
  return app;
}
