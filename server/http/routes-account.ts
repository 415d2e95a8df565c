import { Router, type Request, type RequestHandler } from 'express';
import { z } from 'zod';
import { MAX_DEVICE_NAME, type DeviceInfo } from '../core/accounts.js';
import { MAX_DISPLAY_NAME } from '../core/account-settings.js';
import type { Core } from '../core/core.js';
import { errors } from '../core/errors.js';
import { addressOf, userOf } from './auth.js';
import { sendJson } from './errors.js';
import { fields, input } from './input.js';

/** A browser's family and system from its User-Agent ("Firefox on Linux"), else the header cut short. */
export function deviceNameFromAgent(agent: string | undefined): string {
  if (!agent) return '';
  const browser = /Edg\//.test(agent)
    ? 'Edge'
    : /Firefox\//.test(agent)
      ? 'Firefox'
      : /Chrome\//.test(agent)
        ? 'Chrome'
        : /Safari\//.test(agent)
          ? 'Safari'
          : null;
  const system = /Android/.test(agent)
    ? 'Android'
    : /iPhone|iPad/.test(agent)
      ? 'iOS'
      : /Windows/.test(agent)
        ? 'Windows'
        : /Mac OS X/.test(agent)
          ? 'macOS'
          : /Linux/.test(agent)
            ? 'Linux'
            : null;
  if (browser) return system ? `${browser} on ${system}` : browser;
  return agent.trim().slice(0, MAX_DEVICE_NAME);
}

const deviceSchema = z.object({ device: z.string().trim().max(MAX_DEVICE_NAME).optional() });

/** The device a login or registration names (`device`, else from the User-Agent), and its address. */
export function deviceOf(req: Request): DeviceInfo {
  const { device } = input(req, deviceSchema);
  return { name: device || deviceNameFromAgent(req.headers['user-agent']), address: addressOf(req) };
}

const displayNameSchema = z.object({ display_name: z.string().trim().max(MAX_DISPLAY_NAME) });
const passwordSchema = z.object({ current: z.string().min(1).max(256), password: z.string().min(8).max(256) });
const deleteSchema = z.object({ password: z.string().min(1).max(256), messages: z.enum(['keep', 'remove']) });
const nameSchema = z.object({ name: fields.name });

/** A path parameter as one string ('' when absent). */
function param(req: Request, name: string): string {
  const v: unknown = req.params[name];
  return typeof v === 'string' ? v : '';
}

/** A device id from the path; a malformed one names no device of mine (404). */
function deviceId(raw: string): number {
  if ( !/^\d{1,15}$/.test(raw)) throw errors.notFound('device');
  return Number(raw);
}

/** Issue 13 B (docs/api.md "Accounts, blocks and mutes"): profile, password, devices, deletion, blocks, mutes. */
export function accountRouter(core: Core, auth: RequestHandler): Router {
  const router = Router();
  const settings = core.settings;

  router.get('/me', auth, async (_req, res) => sendJson(res, 200, { user: await settings.me(userOf(res)) }));

  const setProfile: RequestHandler = async (req, res) => {
    const { display_name } = input(req, displayNameSchema);
    sendJson(res, 200, { user: await settings.setDisplayName(userOf(res), display_name) });
  };
  router.post('/me', auth, setProfile);
  router.patch('/me', auth, setProfile);

  router.get('/users/:name', auth, async (req, res) => sendJson(res, 200, { user: await settings.profile(param(req, 'name')) }));

  router.post('/me/password', auth, async (req, res) => {
    const { current, password } = input(req, passwordSchema);
    await settings.changePassword(userOf(res), res.locals['token'] as string, current, password, addressOf(req));
    res.status(204).end();
  });

  router.get('/me/devices', auth, async (_req, res) => sendJson(res, 200, { devices: await settings.devices(userOf(res)) }));

  const revoke: RequestHandler = async (req, res) => {
    await settings.revokeDevice(userOf(res), deviceId(param(req, 'id')));
    res.status(204).end();
  };
  router.delete('/me/devices/:id', auth, revoke);
  router.post('/me/devices/:id/revoke', auth, revoke);

  const deleteAccount: RequestHandler = async (req, res) => {
    const { password, messages } = input(req, deleteSchema);
    await settings.deleteAccount(userOf(res), password, messages, addressOf(req));
    res.status(204).end();
  };
  router.post('/me/delete', auth, deleteAccount);
  router.delete('/me', auth, deleteAccount);

  router.get('/blocks', auth, async (_req, res) => sendJson(res, 200, { blocks: await settings.blocks(userOf(res)) }));

  router.post('/blocks', auth, async (req, res) => {
    await settings.block(userOf(res), input(req, nameSchema).name);
    res.status(204).end();
  });

  router.delete('/blocks/:name', auth, async (req, res) => {
    await settings.unblock(userOf(res), param(req, 'name'));
    res.status(204).end();
  });

  router.post('/conversations/:id/mute', auth, async (req, res) => {
    await settings.setMuted(userOf(res), param(req, 'id'), true);
    res.status(204).end();
  });

  router.post('/conversations/:id/unmute', auth, async (req, res) => {
    await settings.setMuted(userOf(res), param(req, 'id'), false);
    res.status(204).end();
  });

  return router;
}
