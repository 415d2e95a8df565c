import { Router } from 'express';
import { z } from 'zod';
import type { Core } from '../core/core.js';
import { Search, SEARCH_MAX } from '../core/search.js';
import { userOf, type requireUser } from './auth.js';
import { sendJson } from './errors.js';
import { fields, input } from './input.js';

const searchInput = z.object({
  q: z.string().min(1).max(100).refine((q) => q.trim().length > 0, 'q must not be blank'),
  limit: fields.positiveInt.max(SEARCH_MAX).optional(),
  before: fields.positiveInt.optional(),
});

/** Search within a conversation (docs/api.md, "Search"). */
export function searchRouter(core: Core, auth: ReturnType<typeof requireUser>): Router {
  const router = Router();
  const search = new Search(core.messaging);
  router.get('/conversations/:id/search', auth, async (req, res) => {
    const query = input(req, searchInput);
    sendJson(res, 200, await search.search(userOf(res), req.params['id'], query));
  });
  return router;
}
