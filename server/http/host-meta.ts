import { Router, type Request, type Response } from 'express';

/**
 * XEP-0156 discovery of the BOSH endpoint: `GET /.well-known/host-meta` (XRD, RFC 6415) and
 * `/.well-known/host-meta.json` (JRD), each with one link of rel
 * `urn:xmpp:alt-connections:xbosh` to this server's `/http-bind`. Public and the same for
 * everyone: any origin may read them (`Access-Control-Allow-Origin: *`, no credentials), as web
 * clients on other sites (Converse.js) fetch them before they connect.
 */
export const XBOSH_REL = 'urn:xmpp:alt-connections:xbosh';

/** The BOSH URL as the request reached us (the proxy's scheme and host when TRUST_PROXY trusts it). */
function boshUrl(req: Request): string {
  return `${req.protocol}://${req.get('host') ?? 'localhost'}/http-bind`;
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function publicDocument(res: Response, type: string): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Cross-Origin-Resource-Policy', 'cross-origin');
  res.setHeader('Cache-Control', 'public, max-age=3600');
  res.type(type);
}

/** The two documents, and their CORS preflights (a page may ask with custom headers). */
export function hostMetaRouter(): Router {
  const router = Router();
  const preflight = (_req: Request, res: Response) => {
    res.setHeader('Access-Control-Allow-Origin', '*');
    res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS');
    res.setHeader('Access-Control-Allow-Headers', 'Accept, Content-Type');
    res.setHeader('Access-Control-Max-Age', '86400');
    res.status(204).end();
  };
  router.options(['/.well-known/host-meta', '/.well-known/host-meta.json'], preflight);
  router.get('/.well-known/host-meta', (req, res) => {
    publicDocument(res, 'application/xrd+xml; charset=utf-8');
    res.send(
      `<?xml version="1.0" encoding="UTF-8"?>\n<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n` +
        `  <Link rel="${XBOSH_REL}" href="${escapeAttr(boshUrl(req))}"/>\n</XRD>\n`,
    );
  });
  router.get('/.well-known/host-meta.json', (req, res) => {
    publicDocument(res, 'application/json; charset=utf-8');
    res.send(JSON.stringify({ links: [{ rel: XBOSH_REL, href: boshUrl(req) }] }));
  });
  return router;
}
