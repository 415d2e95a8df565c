/**
 * The HTTP face of BOSH: `POST /http-bind` and `/bosh`, `OPTIONS` for CORS. Reads the raw body
 * itself (whatever the Content-Type says: XEP-0124 clients send text/xml, text/plain or
 * form types, and proxies rewrite it), bounded in size, and always answers with a Content-Length
 * (never chunked: some proxies buffer chunked answers until the end, which defeats long polling).
 */
import cors from 'cors';
import { Router, type Request, type Response } from 'express';
import type { Deps } from '../../deps.js';
import { addressOf } from '../../http/auth.js';
import { terminal, type BoshResponse } from './body.js';

/** The paths BOSH answers on: /http-bind is what most clients default to, /bosh what Converse.js docs use. */
export const BOSH_PATHS = ['/http-bind', '/bosh'];

/** CORS for BOSH (the `cors` package, as the API): origins from CORS_ORIGINS, POST and its preflight. */
function boshCors(origins: string[] | '*') {
  return cors({ origin: origins, methods: ['POST', 'OPTIONS'], allowedHeaders: ['Content-Type'], maxAge: 86_400 });
}

function write(res: Response, r: BoshResponse): void {
  if (res.headersSent || res.destroyed) return;
  const bytes = Buffer.from(r.body, 'utf8');
  res.status(r.status);
  res.setHeader('Content-Type', 'text/xml; charset=utf-8');
  res.setHeader('Content-Length', String(bytes.length));
  res.setHeader('Cache-Control', 'no-store');
  res.end(bytes);
}

/**
 * 1 MiB: a body over the limit but at most this large is still read to its end (and dropped)
 * before the answer, and the connection kept. Answering and closing while a proxy is still
 * sending it makes the proxy's write fail (nginx: "writev() failed (32: Broken pipe) while
 * sending request to upstream", then a 502 instead of our policy-violation; seen in the chaos
 * run). A larger one is answered at once and the connection closed: reading it only costs.
 */
const DRAIN_MAX = 1 << 20;

/** What reading a body gave: its text, or why not (too large: whether it was read to its end). */
type BodyRead = { text: string } | { tooLarge: true; drained: boolean } | { notUtf8: true };

/** Read the whole body as UTF-8, at most `limit` bytes. */
function readBody(req: Request, limit: number): Promise<BodyRead> {
  return new Promise((resolve) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > DRAIN_MAX) {
      req.resume(); // discard; the answer goes out at once, with Connection: close
      return resolve({ tooLarge: true, drained: false });
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let over = Number.isFinite(declared) && declared > limit;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > DRAIN_MAX) return resolve({ tooLarge: true, drained: false }); // no Content-Length, and no end in sight
      if (over) return;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (over) return resolve({ tooLarge: true, drained: true });
      try {
        resolve({ text: new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)) });
      } catch {
        resolve({ notUtf8: true });
      }
    });
    req.on('error', () => resolve({ notUtf8: true }));
  });
}

/** Build the BOSH routes over the node's BOSH manager (deps.bosh, built and stopped with the dependencies). */
export function boshRouter(deps: Deps): Router {
  const manager = deps.bosh;
  const router = Router();
  const origins = deps.config.corsOrigins;
  // The BOSH body limit is the API's: a stanza carries at most a 16 KiB text.
  const limit = deps.config.bodyLimit;
  const allow = boshCors(origins);
  for (const path of BOSH_PATHS) {
    router.options(path, allow); // the preflight: 204
    router.post(path, allow, async (req, res) => {
      const read = await readBody(req, limit);
      if ('tooLarge' in read) {
        if (!read.drained) res.setHeader('Connection', 'close');
        return write(res, terminal('policy-violation', false));
      }
      if ('notUtf8' in read) return write(res, terminal('bad-request', false));
      await manager.handle(read.text, (r) => write(res, r), { address: addressOf(req), base: `${req.protocol}://${req.get('host') ?? 'localhost'}` });
    });
  }
  return router;
}
