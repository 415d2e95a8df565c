import { LRUCache } from 'lru-cache';
import { createHash, randomBytes } from 'node:crypto';
import type { Bus } from '../bus/bus.js';
import type { BotRow, BotScope, Store, WebhookRow } from '../store/store.js';
import { BOT_TOKEN_PREFIX, type BotGrant, type Principal } from './accounts.js';
import { newId } from './conversations.js';
import { errors } from './errors.js';
import type { StreamEvent } from './events.js';
import type { Limits } from './limits.js';
import type { MessageView, Messaging } from './messaging.js';

/** The bus channel on which revoked bot tokens are announced to every node. */
export const BOT_REVOKE_CHANNEL = 'bots:revoked';
/**
 * How long a node trusts a cached bot token lookup: revocation clears it on every node at once via
 * the bus (as logout does for user tokens), and an owner who leaves the conversation is refused by
 * the membership check every send, history page and poll of a bot makes anyway.
 */
const BOT_CACHE_MS = 60_000;
const BOT_CACHE_LIMIT = 10_000;
/** Names of bots and webhooks: shown beside their messages. */
export const BOT_NAME_MAX = 64;
/** Bot tokens and webhooks per user: more is a leak or a loop, not a use. */
export const BOTS_PER_USER = 100;
export const WEBHOOKS_PER_CONVERSATION = 20;

const SECRET = /^[A-Za-z0-9_-]{43}$/;

function hashOf(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

/** A bot token as the API lists it. */
export interface BotView {
  id: string;
  name: string;
  conversation: string;
  scope: BotScope;
  created_at: string;
}

/** A webhook as the API lists it (the URL, with its secret, only when it is made). */
export interface WebhookView {
  id: string;
  name: string;
  conversation: string;
  created_at: string;
  url?: string;
}

function botView(b: BotRow): BotView {
  return { id: b.id, name: b.name, conversation: b.conversationId, scope: b.scope, created_at: b.createdAt.toISOString() };
}

function webhookView(w: WebhookRow): WebhookView {
  return { id: w.id, name: w.name, conversation: w.conversationId, created_at: w.createdAt.toISOString() };
}

/** The conversation an event is about, when it is about one (unknown event types included). */
export function conversationOfEvent(e: StreamEvent): string | null {
  const x = e as unknown as Record<string, unknown>;
  const message = x['message'] as { conversation?: unknown } | undefined;
  if (message && typeof message.conversation === 'string') return message.conversation;
  const conv = x['conversation'];
  if (typeof conv === 'string') return conv;
  if (conv && typeof (conv as { id?: unknown }).id === 'string') return (conv as { id: string }).id;
  return null;
}

/**
 * Bots and incoming webhooks: a bot token or a webhook acts for its owner in one conversation
 * only, and its messages carry its name. Both go through the ordinary send path (sealed,
 * group-committed, idempotent by client_id); the scope of a bot token is enforced by the auth
 * middleware (server/http/auth.ts), here only what each may do is said.
 */
export class Bots {
  private readonly cache = new LRUCache<string, { principal: Principal; until: number }>({ max: BOT_CACHE_LIMIT });
  private readonly onRevoke = (hashHex: string) => void this.cache.delete(hashHex);
  private offResume: (() => void) | null = null;

  constructor(
    private readonly store: Store,
    private readonly bus: Bus,
    private readonly messaging: Messaging,
    private readonly limits: Limits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Listen for bot tokens revoked on other nodes; forget every cached one when the bus had a gap. */
  async start(): Promise<void> {
    await this.bus.subscribe(BOT_REVOKE_CHANNEL, this.onRevoke);
    this.offResume ??= this.bus.onResume(() => this.cache.clear());
  }

  async stop(): Promise<void> {
    this.offResume?.();
    this.offResume = null;
    await this.bus.unsubscribe(BOT_REVOKE_CHANNEL, this.onRevoke);
  }

  /** The principal of a bot token (its owner, with the bot's grant), or null. */
  async authenticate(token: string): Promise<Principal | null> {
    if (!token.startsWith(BOT_TOKEN_PREFIX) || !SECRET.test(token.slice(BOT_TOKEN_PREFIX.length))) return null;
    const hash = hashOf(token);
    const key = hash.toString('hex');
    const cached = this.cache.get(key);
    if (cached && cached.until > this.now()) return cached.principal;
    const bot = await this.store.liveBot(hash);
    if (!bot) return null;
    const grant: BotGrant = {
      id: bot.id,
      name: bot.name,
      conversation: bot.conversationId,
      read: bot.scope.includes('read'),
      send: bot.scope.includes('send'),
    };
    // Its own device: the owner's other devices are woken by what the bot sends, and not the bot itself
    const principal: Principal = { id: bot.ownerId, name: bot.ownerName, device: `b${key.slice(0, 15)}`, bot: grant };
    this.cache.set(key, { principal, until: this.now() + BOT_CACHE_MS });
    return principal;
  }

  /** Make a bot token for a conversation I am a member of; the token is shown this once. */
  async create(me: Principal, input: { name: string; conversation: string; scope: BotScope }): Promise<{ bot: BotView; token: string }> {
    const conv = await this.messaging.requireMember(input.conversation, me);
    if ((await this.store.botsOf(me.id)).length >= BOTS_PER_USER) {
      throw errors.conflict(`at most ${BOTS_PER_USER} bot tokens per user; revoke one first`, 'too_many_bots');
    }
    const token = BOT_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const row = await this.store.createBot({ id: newId('b'), hash: hashOf(token), ownerId: me.id, conversationId: conv.id, name: input.name, scope: input.scope });
    return { bot: botView(row), token };
  }

  /** My bot tokens (never the tokens themselves). */
  async list(me: Principal): Promise<BotView[]> {
    return (await this.store.botsOf(me.id)).map(botView);
  }

  /** Revoke a bot token of mine, on every node at once; 404 when it is not mine. */
  async revoke(me: Principal, id: string): Promise<void> {
    const hash = await this.store.deleteBot(me.id, id);
    if (!hash) throw errors.notFound('bot');
    const key = hash.toString('hex');
    this.cache.delete(key);
    await this.bus.publish(BOT_REVOKE_CHANNEL, key);
  }

  /** Only the events of the bot's conversation (a bot reads its owner's stream through this filter). */
  visible(bot: BotGrant, events: readonly StreamEvent[]): StreamEvent[] {
    return events.filter((e) => conversationOfEvent(e) === bot.conversation);
  }

  /** A webhook posting into a conversation I am a member of; its URL (with the secret) is shown this once. */
  async createWebhook(me: Principal, conversationId: string, name: string): Promise<WebhookView> {
    const conv = await this.messaging.requireMember(conversationId, me);
    if ((await this.store.webhooksOf(me.id, conv.id)).length >= WEBHOOKS_PER_CONVERSATION) {
      throw errors.conflict(`at most ${WEBHOOKS_PER_CONVERSATION} webhooks of yours per conversation; delete one first`, 'too_many_webhooks');
    }
    const secret = randomBytes(32).toString('base64url');
    const row = await this.store.createWebhook({ id: newId('w'), hash: hashOf(secret), ownerId: me.id, conversationId: conv.id, name });
    return { ...webhookView(row), url: `/api/hooks/${secret}` };
  }

  /** My webhooks in a conversation (without their URLs). */
  async webhooks(me: Principal, conversationId: string): Promise<WebhookView[]> {
    const conv = await this.messaging.requireMember(conversationId, me);
    return (await this.store.webhooksOf(me.id, conv.id)).map(webhookView);
  }

  /** Delete a webhook of mine: its URL answers 404 from now on, on every node (nothing is cached). */
  async deleteWebhook(me: Principal, conversationId: string, id: string): Promise<void> {
    if (!(await this.store.deleteWebhook(me.id, conversationId, id))) throw errors.notFound('webhook');
  }

  /**
   * A post to a webhook's URL: a message from its creator carrying the webhook's name, counted
   * against the creator's request limit as their own sends are. 404 for an unknown or deleted
   * secret, and once the creator is no longer a member of the conversation.
   */
  async post(secret: string, input: { text: string; clientId?: string }): Promise<{ message: MessageView; created: boolean }> {
    if (!SECRET.test(secret)) throw errors.notFound('webhook');
    const hook = await this.store.liveWebhook(hashOf(secret));
    if (!hook) throw errors.notFound('webhook');
    this.limits.request(hook.ownerId);
    const as: Principal = { id: hook.ownerId, name: hook.ownerName, device: `w${hook.id.slice(1, 16)}` };
    return this.messaging.send(as, hook.conversationId, { text: input.text, clientId: input.clientId, bot: hook.name });
  }
}
