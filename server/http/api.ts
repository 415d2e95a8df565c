import { Router, type Request, type Response } from 'express';
import type { Config } from '../config.js';
import type { Core } from '../core/core.js';
import { errors } from '../core/errors.js';
import type { Store } from '../store/store.js';
import { poll, parseWait } from '../transports/longpoll.js';
import type { ParkingLot } from '../transports/parking.js';
import { addressOf, requireUser, userOf } from './auth.js';
import { sendJson } from './errors.js';
import { accountRouter, deviceOf } from './routes-account.js';
import { groupsRouter } from './routes-groups.js';
import { botsRouter } from './routes-bots.js';
import { messagesRouter } from './routes-messages.js';
import { searchRouter } from './routes-search.js';

/** What the API routes need. */
export interface ApiDeps {
  config: Config;
  core: Core;
  store: Store;
  lot: ParkingLot;
}

function body(req: Request): Record<string, unknown> {
  const b: unknown = req.body;
  return typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
}

/** A field from the body, or the query string (for clients that can only do GET or forms). */
function field(req: Request, name: string): unknown {
  const b = body(req)[name];
  return b !== undefined ? b : req.query[name];
}

/** The JSON API (docs/api.md): accounts, contacts, conversations, messages, events. */
export function apiRouter(deps: ApiDeps): { router: Router; auth: ReturnType<typeof requireUser> } {
  const { core, lot } = deps;
  const router = Router();
  const auth = requireUser(core);
  router.use(botsRouter({ core, lot }, auth)); // before /events: a bot token's poll is answered there

  // The hot routes first: the router tries each route in order, and these are most requests.
  const events = async (req: Request, res: Response) => {
    const me = userOf(res);
    const wait = parseWait(field(req, 'wait'));
    const aborted = new AbortController();
    // A client that goes away frees its place at once, not when the wait runs out.
    res.on('close', () => {
      if (!res.writableFinished) aborted.abort();
    });
    const batch = await poll(core.streams, lot, me, field(req, 'since'), wait, aborted.signal);
    if (res.writableEnded || res.destroyed) return;
    // A device signed out while its poll waited (logout, password change, revoked) gets no events
    if (!(await core.accounts.authenticate(res.locals['token'] as string))) throw errors.unauthorized();
    sendJson(res, 200, batch);
  };
  router.get('/events', auth, events);
  router.post('/events', auth, events);

  router.post('/conversations/:id/messages', auth, async (req, res) => {
    const { message, created } = await core.messaging.send(userOf(res), req.params['id'], {
      text: field(req, 'text'),
      clientId: field(req, 'client_id'),
      replyTo: field(req, 'reply_to'),
    });
    sendJson(res, created ? 201 : 200, { message });
  });

  router.use(accountRouter(core, auth));
  router.use(groupsRouter(deps, auth)); // groups: settings, leave, owner, invite links

  router.post('/register', async (req, res) => {
    await core.limits.register(addressOf(req));
    const b = body(req);
    const { user, token } = await core.accounts.register(b['name'], b['password'], deviceOf(req));
    sendJson(res, 201, { user: { name: user.name }, token });
  });

  router.post('/login', async (req, res) => {
    const b = body(req);
    const { user, token } = await core.logins.login(b['name'], b['password'], addressOf(req), deviceOf(req));
    sendJson(res, 200, { user: { name: user.name }, token });
  });

  router.post('/logout', auth, async (_req, res) => {
    await core.accounts.logout(res.locals['token'] as string);
    res.status(204).end();
  });

  router.post('/heartbeat', auth, (_req, res) => void res.status(204).end());

  router.get('/contacts', auth, async (_req, res) => {
    const contacts = await core.contacts.of(userOf(res));
    sendJson(res, 200, { contacts: contacts.map(({ id: _id, ...c }) => c) });
  });

  router.get('/conversations', auth, async (req, res) => {
    const { conversations, next, unreadTotal } = await core.messaging.list(userOf(res), { limit: req.query['limit'], before: req.query['before'] });
    sendJson(res, 200, next ? { conversations, next, unread_total: unreadTotal } : { conversations, unread_total: unreadTotal });
  });

  router.post('/conversations', auth, async (req, res) => {
    const me = userOf(res);
    await core.limits.conversation(me.id);
    const withName = field(req, 'with');
    if (withName !== undefined) {
      const { conversation, created } = await core.messaging.openDirect(me, withName);
      sendJson(res, created ? 201 : 200, { conversation });
      return;
    }
    const members = field(req, 'members');
    if (members === undefined && field(req, 'title') === undefined) {
      throw errors.badRequest('give `with` for a direct conversation, or `title` and `members` for a group', 'bad_conversation');
    }
    sendJson(res, 201, { conversation: await core.messaging.createGroup(me, field(req, 'title'), members ?? [], field(req, 'history')) });
  });

  router.post('/conversations/:id/accept', auth, async (req, res) => {
    await core.messaging.accept(userOf(res), req.params['id']);
    res.status(204).end();
  });

  router.post('/conversations/:id/decline', auth, async (req, res) => {
    await core.messaging.decline(userOf(res), req.params['id']);
    res.status(204).end();
  });

  router.post('/conversations/:id/admins', auth, async (req, res) => {
    await core.messaging.setAdmin(userOf(res), req.params['id'], field(req, 'name'), true);
    res.status(204).end();
  });

  router.delete('/conversations/:id/admins/:name', auth, async (req, res) => {
    await core.messaging.setAdmin(userOf(res), req.params['id'], req.params['name'], false);
    res.status(204).end();
  });

  router.post('/conversations/:id/members', auth, async (req, res) => {
    await core.messaging.addMember(userOf(res), req.params['id'], field(req, 'name'));
    res.status(204).end();
  });

  router.delete('/conversations/:id/members/:name', auth, async (req, res) => {
    await core.messaging.removeMember(userOf(res), req.params['id'], req.params['name']);
    res.status(204).end();
  });

  router.get('/conversations/:id/messages', auth, async (req, res) => {
    const messages = await core.messaging.history(userOf(res), req.params['id'], req.query['before'], req.query['limit']);
    sendJson(res, 200, { messages });
  });

  router.post('/conversations/:id/read', auth, async (req, res) => {
    await core.messaging.markRead(userOf(res), req.params['id'], field(req, 'up_to'));
    res.status(204).end();
  });

  router.post('/conversations/:id/typing', auth, async (req, res) => {
    await core.messaging.typing(userOf(res), req.params['id']);
    res.status(204).end();
  });

  router.use(messagesRouter(core, auth));
  router.use(searchRouter(core, auth));

  return { router, auth };
}
