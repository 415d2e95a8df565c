import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { BOT_TOKEN_PREFIX } from '../core/accounts.js';
import { BOT_NAME_MAX } from '../core/bots.js';
import type { Core } from '../core/core.js';
import { poll, parseWait } from '../transports/longpoll.js';
import type { ParkingLot } from '../transports/parking.js';
import { tokenOf, userOf } from './auth.js';
import { sendJson } from './errors.js';
import { input } from './input.js';

/** What the bots routes need. */
export interface BotsDeps {
  core: Core;
  lot: ParkingLot;
}

const botName = z.string().trim().min(1).max(BOT_NAME_MAX);
/** A scope, in either order of its two words. */
const scope = z.enum(['send', 'read', 'read,send', 'send,read']).transform((s) => (s === 'send,read' ? 'read,send' : s));
const newBot = z.object({ name: botName, conversation: z.string().min(1).max(64), scope });
const newWebhook = z.object({ name: botName });
const hookPost = z.object({
  // The send path checks the text itself (empty: 400 bad_text; too long: 413), as for every send
  text: z.string(),
  client_id: z.string().max(128).optional(),
});

/** A poll's fields, checked by parseWait and the stream as for every poll. */
const pollInput = z.object({ wait: z.unknown().optional(), since: z.unknown().optional() });

/**
 * Bot tokens and incoming webhooks (docs/api.md, "Bots and webhooks"). Mounted before the event
 * routes: a poll with a bot token is answered here (only its conversation's events, and nothing
 * acknowledged for its owner); any other poll passes on to the ordinary route.
 */
export function botsRouter(deps: BotsDeps, auth: RequestHandler): Router {
  const { core, lot } = deps;
  const router = Router();

  router.post('/bots', auth, async (req, res) => {
    const b = input(req, newBot);
    const made = await core.bots.create(userOf(res), b);
    sendJson(res, 201, made);
  });

  router.get('/bots', auth, async (_req, res) => {
    sendJson(res, 200, { bots: await core.bots.list(userOf(res)) });
  });

  const revoke = async (req: Request, res: Response) => {
    await core.bots.revoke(userOf(res), String(req.params['id']));
    res.status(204).end();
  };
  router.delete('/bots/:id', auth, revoke);
  router.post('/bots/:id/revoke', auth, revoke);

  router.post('/conversations/:id/webhooks', auth, async (req, res) => {
    const { name } = input(req, newWebhook);
    sendJson(res, 201, { webhook: await core.bots.createWebhook(userOf(res), String(req.params['id']), name) });
  });

  router.get('/conversations/:id/webhooks', auth, async (req, res) => {
    sendJson(res, 200, { webhooks: await core.bots.webhooks(userOf(res), String(req.params['id'])) });
  });

  const deleteWebhook = async (req: Request, res: Response) => {
    await core.bots.deleteWebhook(userOf(res), String(req.params['id']), String(req.params['hook']));
    res.status(204).end();
  };
  router.delete('/conversations/:id/webhooks/:hook', auth, deleteWebhook);
  router.post('/conversations/:id/webhooks/:hook/delete', auth, deleteWebhook);

  // No token: the secret in the URL is the credential.
  router.post('/hooks/:secret', async (req, res) => {
    const b = input(req, hookPost);
    const { message, created } = await core.bots.post(String(req.params['secret']), { text: b.text, clientId: b.client_id });
    sendJson(res, created ? 201 : 200, { message });
  });

  // Only a bot token's poll stops here; any other goes on to the ordinary route (api.ts).
  const botsOnly = (req: Request, _res: Response, next: NextFunction) => next(tokenOf(req)?.startsWith(BOT_TOKEN_PREFIX) ? undefined : 'route');
  const events = async (req: Request, res: Response) => {
    const me = userOf(res);
    const bot = me.bot!;
    // The owner may have left since the token was cached: a bot reads only while they are a member
    await core.messaging.requireMember(bot.conversation, me);
    const q = input(req, pollInput);
    const wait = parseWait(q.wait);
    const aborted = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) aborted.abort();
    });
    // Events of the owner's other conversations are skipped: keep waiting from past them until
    // one of the bot's own arrives or the wait runs out.
    const deadline = Date.now() + wait * 1000;
    let since = q.since;
    for (;;) {
      const left = Math.max(0, (deadline - Date.now()) / 1000);
      const batch = await poll(core.streams, lot, me, since, left, aborted.signal, false);
      if (res.writableEnded || res.destroyed) return;
      const events = core.bots.visible(bot, batch.events);
      if (events.length > 0 || left <= 0 || aborted.signal.aborted || lot.isClosing || batch.limited) {
        sendJson(res, 200, { ...batch, events });
        return;
      }
      since = batch.cursor;
    }
  };
  router.get('/events', botsOnly, auth, events);
  router.post('/events', botsOnly, auth, events);

  return router;
}
