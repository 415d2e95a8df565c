import supertest from 'supertest';
import { unique } from './services.js';

/** A user of a test, with their token and an event cursor. */
export interface TestUser {
  name: string;
  token: string;
  cursor?: string;
}

/** A password every test user gets. */
export const PASSWORD = 'correct horse battery';

/** Register a fresh user on a node. */
export async function register(url: string, base = 'u'): Promise<TestUser> {
  const name = unique(base);
  const res = await supertest(url).post('/api/register').send({ name, password: PASSWORD }).expect(201);
  return { name, token: res.body.token as string };
}

/** An authenticated request builder for a user. */
export function as(url: string, user: TestUser) {
  const agent = supertest(url);
  const auth = { Authorization: `Bearer ${user.token}` };
  return {
    get: (path: string) => agent.get(path).set(auth),
    post: (path: string) => agent.post(path).set(auth),
    delete: (path: string) => agent.delete(path).set(auth),
  };
}

/**
 * The user consents to a conversation someone else opened or added them to (as replying would):
 * from now on they share presence, last seen and read receipts with its members.
 */
export async function accept(url: string, user: TestUser, conversationId: string): Promise<void> {
  await as(url, user).post(`/api/conversations/${conversationId}/accept`).expect(204);
}

/** Poll a user's events (wait seconds), advancing their cursor. */
export async function pollEvents(url: string, user: TestUser, wait = 0): Promise<Array<Record<string, any>>> {
  const q = new URLSearchParams({ wait: String(wait) });
  if (user.cursor) q.set('since', user.cursor);
  const res = await as(url, user).get(`/api/events?${q}`).expect(200);
  user.cursor = res.body.cursor as string;
  return res.body.events as Array<Record<string, any>>;
}

/** Poll until an event matching `match` arrives (or give up after `tries` polls). */
export async function waitForEvent(
  url: string,
  user: TestUser,
  match: (e: Record<string, any>) => boolean,
  tries = 10,
): Promise<Record<string, any>> {
  for (let i = 0; i < tries; i++) {
    const events = await pollEvents(url, user, 5);
    const hit = events.find(match);
    if (hit) return hit;
  }
  throw new Error('event did not arrive');
}
