import { Router, type Request, type Response } from 'express';
import type { Core } from '../core/core.js';
import { errors } from '../core/errors.js';

/**
 * `PUT /upload/:id/:secret/:name`: the PUT of an XEP-0363 slot (server/transports/bosh/upload.ts).
 * The URL's secret is the authorization (no token: the client got the URL over its authenticated
 * XMPP session), so any origin may PUT (CORS `*`, no credentials). The body is the file, exactly the
 * slot's size (Content-Length); it is stored sealed, and the file is downloadable only once sent in a
 * conversation (then as any attachment, `GET /api/files/:id`, members only).
 */
export function uploadSlotsRouter(core: Core): Router {
  const router = Router();
  const cors = (res: Response) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  };
  router.options('/upload/:id/:secret/:name', (_req: Request, res: Response) => {
    cors(res);
    res.setHeader('Access-Control-Allow-Methods', 'PUT, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'Content-Type, Content-Length');
    res.setHeader('Access-Control-Max-Age', '86400');
    res.status(204).end();
  });
  router.put('/upload/:id/:secret/:name', async (req: Request, res: Response) => {
    cors(res);
    const raw = req.headers['content-length'];
    const declared = raw === undefined ? NaN : Number(raw);
    if (!Number.isSafeInteger(declared)) throw errors.badRequest('send the file with its Content-Length', 'bad_size');
    await core.uploadSlots.put(String(req.params['id']), String(req.params['secret']), declared, req);
    res.status(201).end();
  });
  return router;
}
