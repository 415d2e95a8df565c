import type { Request } from 'express';
import { z } from 'zod';
import { errors } from '../core/errors.js';

/**
 * Input at the edge: a route names its fields in a zod schema, and reads them from the JSON or form
 * body, falling back to the query string (curl users and old browsers send what they can). Core
 * receives the parsed, typed object; a bad field is a 400 `bad_<field>` (as the older routes answer,
 * e.g. `bad_title`), its message naming the field.
 */
export function input<S extends z.ZodType>(req: Request, schema: S): z.infer<S> {
  const b: unknown = req.body;
  const fromBody = typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>) : {};
  const merged: Record<string, unknown> = { ...(req.query as Record<string, unknown>), ...fromBody };
  const parsed = schema.safeParse(merged);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? `\`${issue.path.join('.')}\`: ` : '';
  const field = issue?.path[0];
  throw errors.badRequest(`${where}${issue?.message ?? 'invalid input'}`, typeof field === 'string' ? `bad_${field}` : 'bad_request');
}

/** Common field shapes, so every route spells them once. */
export const fields = {
  /** A user name as the API takes it (core normalises and checks it exists). */
  name: z.string().trim().min(1).max(64),
  /** A non-empty text, bounded like a message body. */
  text: (max: number) => z.string().min(1).max(max),
  /** A positive integer that may arrive as a form string. */
  positiveInt: z.coerce.number().int().positive(),
  /** A boolean that may arrive as a form string ("true"/"false"/"1"/"0"). */
  flag: z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]),
};
