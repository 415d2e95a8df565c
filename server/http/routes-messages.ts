import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import type { Core } from '../core/core.js';
import { userOf } from './auth.js';
import { sendJson } from './errors.js';
import { input } from './input.js';

/** The edit body: a text (core checks its length and that it is not blank). */
const EditInput = z.object({ text: z.string() });
/** The reaction bodies: one emoji (core checks its shape: 400 bad_emoji). */
const EmojiInput = z.object({ emoji: z.string() });

/**
 * Issue 13 (docs/api.md, "Editing, deleting, replies and reactions"): edit a message and read its
 * edit history, delete it for everyone, react to it. Replies are a field of the send route.
 */
export function messagesRouter(core: Core, auth: RequestHandler): Router {
  const router = Router();
  const base = '/conversations/:id/messages/:mid';

  const edit: RequestHandler = async (req, res) => {
    const { text } = input(req, EditInput);
    sendJson(res, 200, { message: await core.changes.edit(userOf(res), req.params['id'], req.params['mid'], text) });
  };
  router.post(`${base}/edit`, auth, edit);
  router.patch(base, auth, edit);

  router.get(`${base}/edits`, auth, async (req, res) => {
    sendJson(res, 200, { edits: await core.changes.edits(userOf(res), req.params['id'], req.params['mid']) });
  });

  const remove: RequestHandler = async (req, res) => {
    sendJson(res, 200, { message: await core.changes.remove(userOf(res), req.params['id'], req.params['mid']) });
  };
  router.post(`${base}/delete`, auth, remove);
  router.delete(base, auth, remove);

  router.post(`${base}/reactions`, auth, async (req, res) => {
    const { emoji } = input(req, EmojiInput);
    sendJson(res, 200, { message: await core.changes.react(userOf(res), req.params['id'], req.params['mid'], { add: [emoji] }) });
  });
  router.post(`${base}/reactions/remove`, auth, async (req, res) => {
    const { emoji } = input(req, EmojiInput);
    sendJson(res, 200, { message: await core.changes.react(userOf(res), req.params['id'], req.params['mid'], { remove: [emoji] }) });
  });
  router.delete(`${base}/reactions/:emoji`, auth, async (req, res) => {
    sendJson(res, 200, { message: await core.changes.react(userOf(res), req.params['id'], req.params['mid'], { remove: [String(req.params['emoji'])] }) });
  });

  return router;
}
