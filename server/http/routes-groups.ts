import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { INVITE_MAX_S, type InviteView } from '../core/invites.js';
import { projectPath } from '../paths.js';
import type { ApiDeps } from './api.js';
import { userOf } from './auth.js';
import { sendJson } from './errors.js';
import { fields, input } from './input.js';

const settingsInput = z.object({
  title: z.string().trim().min(1).max(100).optional(),
  history: z.enum(['joined', 'all']).optional(),
  who_can_add: z.enum(['admins', 'members']).optional(),
});
const ownerInput = z.object({ name: fields.name });
const inviteInput = z.object({ expires_in: z.coerce.number().int().min(1).max(INVITE_MAX_S).optional() });

/** An invite as the API answers it: `url` is its page on this server, as the request reached it. */
function inviteJson(req: Request, invite: InviteView) {
  return { code: invite.code, url: `${req.protocol}://${req.get('host')}${invite.path}`, expires_at: invite.expires_at, created_by: invite.created_by };
}

/**
 * Groups (docs/api.md, Groups): title and settings, leaving, ownership, invite links. Mounted in
 * the API router behind its authentication (`auth`).
 */
export function groupsRouter(deps: ApiDeps, auth: RequestHandler): Router {
  const { core } = deps;
  const router = Router();

  router.post('/conversations/:id/settings', auth, async (req, res) => {
    const change = input(req, settingsInput);
    sendJson(res, 200, { conversation: await core.messaging.changeSettings(userOf(res), req.params['id'], change) });
  });

  router.post('/conversations/:id/leave', auth, async (req, res) => {
    await core.messaging.leave(userOf(res), req.params['id']);
    res.status(204).end();
  });

  router.post('/conversations/:id/owner', auth, async (req, res) => {
    const { name } = input(req, ownerInput);
    await core.messaging.transferOwnership(userOf(res), req.params['id'], name);
    res.status(204).end();
  });

  router.post('/conversations/:id/invites', auth, async (req, res) => {
    const { expires_in } = input(req, inviteInput);
    const invite = await core.invites.create(userOf(res), req.params['id'], expires_in);
    sendJson(res, 201, { invite: inviteJson(req, invite) });
  });

  router.get('/conversations/:id/invites', auth, async (req, res) => {
    const invites = await core.invites.list(userOf(res), req.params['id']);
    sendJson(res, 200, { invites: invites.map((i) => inviteJson(req, i)) });
  });

  const revoke = async (req: Request, res: Response) => {
    await core.invites.revoke(userOf(res), req.params['id'], req.params['code']);
    res.status(204).end();
  };
  router.delete('/conversations/:id/invites/:code', auth, revoke);
  router.post('/conversations/:id/invites/:code/revoke', auth, revoke);

  router.get('/invites/:code', auth, async (req, res) => {
    sendJson(res, 200, { invite: await core.invites.preview(userOf(res), req.params['code']) });
  });

  router.post('/invites/:code/join', auth, async (req, res) => {
    const me = userOf(res);
    // Joining a group is opening a conversation: the same hourly budget
    await core.limits.conversation(me.id);
    sendJson(res, 200, { conversation: await core.invites.join(me, req.params['code']) });
  });

  return router;
}

/**
 * `/join/<code>`: the web client's page, which reads the code from its location and offers to
 * join. The page names its scripts and styles relatively (`app.js`), so from `/join/<code>` the
 * browser asks for `/join/app.js`: those are served from public/ too (a code has no dot, an asset
 * always has one, so the two never meet).
 */
export function joinPageRouter(): Router {
  const router = Router();
  const index = projectPath('public', 'index.html');
  router.use('/join', express.static(projectPath('public'), { index: false, maxAge: '1h' }));
  router.get('/join/:code', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.sendFile(index);
  });
  return router;
}
