import http from 'node:http';
import type { RequestHandler } from 'express';
import type { Config } from '../config.js';

/**
 * Receiving a whole request may take long only for an upload: a 25 MB file over a slow mobile
 * link is minutes, and cutting it at 60 s loses the upload. Every other body is at most 64 KiB,
 * so a request still sending one after BODY_TIMEOUT (60 s) is a slow-body attack, and its
 * connection is cut. (The 10-minute limit used to apply to every route.)
 */
const UPLOAD_TIMEOUT_MS = 10 * 60_000;
const UPLOAD_ROUTE = /^\/api\/conversations\/[^/]+\/files\/?$/;

/** Cut a request whose body has not fully arrived within ms, unless it is an upload. */
export function bodyDeadline(ms: number): RequestHandler {
  return (req, _res, next) => {
    if (!req.complete && !(req.method === 'POST' && UPLOAD_ROUTE.test(req.path))) {
      const timer = setTimeout(() => {
        if (!req.complete) req.socket.destroy();
      }, ms);
      timer.unref();
      const done = () => clearTimeout(timer);
      req.once('end', done);
      req.once('close', done);
    }
    next();
  };
}

/** The HTTP server over the app, with Parley's timeouts and connection cap (main.ts and tests). */
export function createServer(app: http.RequestListener, config: Pick<Config, 'maxConnections'>): http.Server {
  const server = http.createServer(app);
  // Parked requests last up to 25 s; keep-alive sockets a little longer than a poll's gap.
  server.keepAliveTimeout = 65_000;
  // Slow headers are cut at 66 s; slow bodies by bodyDeadline, uploads at 10 minutes.
  server.headersTimeout = 66_000;
  server.requestTimeout = UPLOAD_TIMEOUT_MS;
  // Each parked request holds a connection: past the cap new ones are refused at once, before
  // they cost anything, instead of the node running out of memory or descriptors.
  server.maxConnections = config.maxConnections;
  return server;
}
