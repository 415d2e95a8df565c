import { Router, type Request, type RequestHandler, type Response } from 'express';
import multer, { MulterError } from 'multer';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';
import { BlobNotFound, type Blobs } from '../blobs/blobs.js';
import { SealedBlobs } from '../blobs/seal.js';
import type { Config } from '../config.js';
import type { Core } from '../core/core.js';
import { AppError, errors } from '../core/errors.js';
import { toBuffer, type Queryable } from '../store/db.js';
import { Attachments } from '../media/attachments.js';
import { contentDisposition } from '../media/names.js';
import { isInlineImage } from '../media/sniff.js';
import { sealedStorage, setUploadTarget, type StoredFile } from '../media/upload.js';
import { userOf } from './auth.js';
import { sendJson } from './errors.js';
import { requireCleanText } from './text.js';

/** What the file routes need. */
export interface FilesDeps {
  config: Config;
  core: Core;
  db: Queryable;
  blobs: Blobs;
  log: Logger;
}

export { attachmentView, type AttachmentView } from '../core/uploads.js';

// Room for the multipart framing and the text/client_id fields around the file: a request whose
// Content-Length says it is larger than the file limit plus this cannot be a valid upload.
const MULTIPART_OVERHEAD = 256 * 1024;
// A browser may cache a file it was allowed to see for a day; access can be lost (removed from a
// group), and a day bounds how long a shared computer keeps it. Files never change, so no revalidation.
const CACHE_CONTROL = 'private, max-age=86400';
const FILE_ID = /^f[A-Za-z0-9_-]{1,63}$/;

/** multer's and busboy's errors as Parley's codes; anything else passes through. */
function fromMulter(err: unknown, limit: number): unknown {
  if (err instanceof MulterError) {
    switch (err.code) {
      case 'LIMIT_FILE_SIZE':
        return errors.tooLarge(`file is larger than ${limit} bytes`);
      case 'LIMIT_UNEXPECTED_FILE':
      case 'LIMIT_FILE_COUNT':
        return errors.badRequest('send exactly one file, in the multipart field `file`', 'bad_upload');
      default:
        return errors.badRequest(`bad multipart body: ${err.message}`, 'bad_upload');
    }
  }
  if (err instanceof AppError) return err;
  const message = (err as Error | undefined)?.message ?? '';
  // busboy's parse errors and a client that went away mid-upload.
  if (/multipart|boundary|part|form|Request (aborted|closed)|Unexpected end/i.test(message)) {
    return errors.badRequest(`bad multipart body: ${message}`, 'bad_upload');
  }
  return err;
}

/** `POST /conversations/:id/files`, `GET /files/:id` and `GET /files/:id/thumbnail`, to mount under /api. */
export function filesRouter(deps: FilesDeps, auth: RequestHandler): Router {
  const { config, core } = deps;
  const log = deps.log.child({ module: 'files' });
  const sealed = new SealedBlobs(deps.blobs);
  const attachments = new Attachments(deps.db);
  const router = Router();
  const uploads = core.uploads;
  const upload = multer({
    storage: sealedStorage(sealed),
    defParamCharset: 'utf8', // file names as UTF-8 (browsers send them so), not busboy's latin1
    limits: { fileSize: config.uploadLimit, files: 1, fields: 8, fieldSize: 64 * 1024, fieldNameSize: 64, parts: 10 },
  }).single('file');

  const receive = (req: Request, res: Response) =>
    new Promise<void>((resolve, reject) => upload(req, res, (err?: unknown) => (err ? reject(fromMulter(err, config.uploadLimit)) : resolve())));

  router.post('/conversations/:id/files', auth, async (req: Request, res: Response) => {
    const me = userOf(res);
    const declared = Number(req.headers['content-length']);
    const target = await uploads.begin(me, req.params['id'], () => {
      if (!req.is('multipart/form-data')) throw errors.unsupportedType('send the file as multipart/form-data');
      if (Number.isFinite(declared) && declared > config.uploadLimit + MULTIPART_OVERHEAD) {
        throw errors.tooLarge(`file is larger than ${config.uploadLimit} bytes`);
      }
    });
    setUploadTarget(req, { dataKey: target.dataKey, limit: config.uploadLimit, ...(Number.isFinite(declared) ? { expected: declared } : {}) });
    await receive(req, res);
    const file = req.file as unknown as (Express.Multer.File & StoredFile) | undefined;
    if (!file) throw errors.badRequest('attach the file in the multipart field `file`', 'no_file');
    const body = (req.body ?? {}) as Record<string, unknown>;
    const received = { blobKey: file.blobKey, size: file.size, sniffed: file.sniffed, imageBytes: file.imageBytes, originalName: file.originalname };
    file.imageBytes = undefined; // the use case holds the only reference, and lets it go after the thumbnails
    const { message, created } = await uploads.finish(
      me,
      target,
      received,
      { text: body['text'], clientId: body['client_id'], replyTo: body['reply_to'] },
      // multipart fields are parsed here, after the edge's check
      () => requireCleanText(req.body, 'the form'),
    );
    sendJson(res, created ? 201 : 200, { message });
  });

  async function serve(req: Request, res: Response, variant: 'original' | 'small' | 'large') {
    const id = req.params['id'];
    const me = userOf(res);
    const found = typeof id === 'string' && FILE_ID.test(id) ? await attachments.forMember(id, me.id) : null;
    if (!found) throw errors.notFound('file');
    const a = found.attachment;
    const thumb = variant === 'original' ? undefined : a.thumbnails?.[variant];
    if (variant !== 'original' && !thumb) throw errors.notFound('thumbnail');
    const key = thumb ? thumb.key : a.blobKey;
    const size = thumb ? thumb.size : a.size;
    const type = thumb ? thumb.type : a.type;
    const etag = `"${a.id}-${variant}"`;
    const dataKey = core.keys.key(a.conversationId, toBuffer(found.wrappedKey));

    const inline = thumb !== undefined || isInlineImage(a.type);
    const name = thumb ? `${a.name.replace(/\.[^.]*$/, '')}-thumbnail.${thumb.type === 'image/webp' ? 'webp' : 'jpg'}` : a.name;
    // req.fresh weighs If-None-Match against the answer's ETag, so that header goes first.
    res.setHeader('ETag', etag);
    const notModified = req.fresh;

    let range: { start: number; end: number } | undefined;
    const ifRange = req.headers['if-range'];
    if (!notModified && req.headers.range && (!ifRange || ifRange === etag)) {
      const parsed = req.range(size, { combine: true });
      if (parsed === -1) {
        res.setHeader('Content-Range', `bytes */${size}`);
        throw new AppError(416, 'bad_range', 'range not satisfiable');
      }
      // Malformed (-2) or several ranges: answer the whole file, as RFC 9110 allows.
      if (Array.isArray(parsed) && parsed.type === 'bytes' && parsed.length === 1) range = parsed[0];
    }

    // Open the blob before the other headers are set, so a missing blob is a plain JSON 404.
    let body: Readable | undefined;
    if (!notModified && req.method !== 'HEAD' && size > 0) {
      try {
        body = await sealed.get(dataKey, key, range, size);
      } catch (err) {
        if (!BlobNotFound.is(err)) throw err;
        // The row outlived its blob (a store restored from an older backup, a manual delete).
        log.error({ file: a.id, variant, key }, 'attachment row without its blob');
        res.removeHeader('ETag');
        throw errors.notFound('file');
      }
    }

    res.setHeader('Content-Type', type);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    // Even if a browser were talked into rendering a file as a page, it runs nothing and reaches nothing.
    res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
    res.setHeader('Content-Disposition', contentDisposition(inline ? 'inline' : 'attachment', name));
    res.setHeader('Cache-Control', CACHE_CONTROL);
    res.setHeader('Accept-Ranges', 'bytes');
    if (notModified) {
      res.status(304).end();
      return;
    }
    if (range) {
      res.status(206);
      res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
      res.setHeader('Content-Length', String(range.end - range.start + 1));
    } else {
      res.status(200);
      res.setHeader('Content-Length', String(size));
    }
    if (!body) {
      res.end();
      return;
    }
    try {
      await pipeline(body, res);
    } catch (err) {
      // Headers are gone; the client sees a cut connection. A client that left is not news.
      if (!res.destroyed || (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') {
        log.error({ err, file: a.id, variant }, 'file download failed');
      }
      res.destroy();
    }
  }

  /**
   * A file URL may carry `grant` (GET /api/files/grant) instead of a token: it opens files only,
   * for about an hour. Without one, the usual bearer token.
   */
  const fileAuth: RequestHandler = (req, res, next) => {
    if (req.query['grant'] === undefined) return auth(req, res, next);
    const userId = core.fileGrants.verify(req.query['grant']);
    if (userId === null) throw errors.unauthorized('the file link has expired or is not valid');
    core.limits.request(userId);
    res.locals['user'] = { id: userId, name: '' };
    next();
  };

  router.get('/files/grant', auth, (_req, res) => {
    const { grant, expiresAt } = core.fileGrants.issue(userOf(res).id);
    sendJson(res, 200, { grant, expires_at: expiresAt.toISOString() });
  });
  router.get('/files/:id', fileAuth, (req, res) => serve(req, res, 'original'));
  router.get('/files/:id/thumbnail', fileAuth, (req, res) => serve(req, res, req.query['size'] === 'small' ? 'small' : 'large'));
  return router;
}
