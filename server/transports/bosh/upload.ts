/**
 * XEP-0363 HTTP File Upload over Parley's files (core/upload-slots.ts). The service is
 * `upload.DOMAIN`; a slot request answers a PUT URL (`/upload/ID/SECRET/NAME`, the secret is the
 * authorization) and a GET URL that is the ordinary members-only `/api/files/ID`. The uploaded file
 * joins a conversation when its uploader sends the GET URL as a message there, as clients do after
 * an upload: that message gets the file as its attachment (and its OOB link), as the JSON files
 * route would have made it.
 */
import type { Principal } from '../../core/accounts.js';
import type { Core } from '../../core/core.js';
import { AppError } from '../../core/errors.js';
import type { MessageView } from '../../core/views.js';
import { iqError, iqResult, send, type IqContext } from './iq-context.js';
import { parseJid } from './stanzas.js';
import { child, el, type XmlElement } from './xml.js';

export const UPLOAD_NS = 'urn:xmpp:http:upload:0';
const DATA_NS = 'jabber:x:data';

/** disco#info features of the upload service. */
export const UPLOAD_FEATURES = [UPLOAD_NS] as const;

/** The upload service's JID (to list in the server's disco#items). */
export function uploadService(domain: string): string {
  return `upload.${domain}`;
}

/** The upload service's disco#info query (identity store/file, the feature, max-file-size), for the disco code. */
export function uploadDiscoInfo(limit: number): XmlElement {
  return el(
    'query',
    { xmlns: 'http://jabber.org/protocol/disco#info' },
    el('identity', { category: 'store', type: 'file', name: 'Parley files' }),
    el('feature', { var: UPLOAD_NS }),
    el('x', { xmlns: DATA_NS, type: 'result' },
      el('field', { var: 'FORM_TYPE', type: 'hidden' }, el('value', {}, UPLOAD_NS)),
      el('field', { var: 'max-file-size' }, el('value', {}, String(limit)))),
  );
}

/** A slot request to the upload service. */
export async function handleUploadSlot(st: XmlElement, ctx: IqContext): Promise<boolean> {
  const request = child(st, 'request', UPLOAD_NS);
  const to = parseJid(st.attrs.to);
  if (!request || !to || to.local || to.domain !== uploadService(ctx.domain)) return false;
  if (st.attrs.type !== 'get' || !ctx.base) {
    send(ctx, iqError(st, ctx, 'modify', 'bad-request'));
    return true;
  }
  try {
    const slot = await ctx.core.uploadSlots.request(ctx.me, request.attrs.filename, request.attrs.size);
    const put = `${ctx.base}/upload/${slot.fileId}/${slot.secret}/${encodeURIComponent(slot.name)}`;
    const get = `${ctx.base}/api/files/${slot.fileId}`;
    send(ctx, iqResult(st, ctx, el('slot', { xmlns: UPLOAD_NS }, el('put', { url: put }), el('get', { url: get }))));
  } catch (err) {
    if (!(err instanceof AppError)) throw err;
    if (err.status === 413) {
      send(ctx, iqError(st, ctx, 'modify', 'not-acceptable',
        el('file-too-large', { xmlns: UPLOAD_NS }, el('max-file-size', {}, String(ctx.core.uploads.limit)))));
    } else if (err.status === 429) {
      send(ctx, iqError(st, ctx, 'wait', 'resource-constraint'));
    } else {
      send(ctx, iqError(st, ctx, 'modify', 'bad-request'));
    }
  }
  return true;
}

/** The file id of a message text that is exactly a file's GET URL (any host: the slot decides). */
export function uploadedFileIn(text: string): string | null {
  const m = /^https?:\/\/[^\s/]+\/api\/files\/(f[A-Za-z0-9_-]{1,63})$/.exec(text.trim());
  return m ? m[1]! : null;
}

/**
 * Send a message whose text is the GET URL of a file I uploaded through a slot: the file becomes
 * its attachment. Null when the text is no such URL (the caller sends it as text).
 */
export async function sendUploaded(core: Core, me: Principal, conversation: string, text: string, clientId: string | undefined): Promise<MessageView | null> {
  const fileId = uploadedFileIn(text);
  if (!fileId) return null;
  const out = await core.uploadSlots.attach(me, conversation, fileId, { text, clientId });
  return out ? out.message : null;
}
