import { toBuffer, type Database } from './db.js';

/** The three scopes a bot token may have. */
export type BotScope = 'send' | 'read' | 'read,send';

/** A bot token's row (without its hash). */
export interface BotRow {
  id: string;
  name: string;
  ownerId: number;
  conversationId: string;
  scope: BotScope;
  createdAt: Date;
}

/** A live bot token: its row and its owner's name (the owner is still a member of its conversation). */
export interface LiveBot extends BotRow {
  ownerName: string;
}

/** An incoming webhook's row (without its secret's hash). */
export interface WebhookRow {
  id: string;
  name: string;
  ownerId: number;
  conversationId: string;
  createdAt: Date;
}

/** A live webhook: its row and its creator's name (the creator is still a member of its conversation). */
export interface LiveWebhook extends WebhookRow {
  ownerName: string;
}

interface Row {
  id: string;
  name: string;
  owner_id: number;
  conversation_id: string;
  scope?: BotScope;
  created_at: Date | string;
  owner_name?: string;
}

function toBot(r: Row): LiveBot {
  return {
    id: r.id,
    name: r.name,
    ownerId: Number(r.owner_id),
    conversationId: r.conversation_id,
    scope: r.scope!,
    createdAt: new Date(r.created_at),
    ownerName: r.owner_name ?? '',
  };
}

function toWebhook(r: Row): LiveWebhook {
  return {
    id: r.id,
    name: r.name,
    ownerId: Number(r.owner_id),
    conversationId: r.conversation_id,
    createdAt: new Date(r.created_at),
    ownerName: r.owner_name ?? '',
  };
}

/**
 * Bot tokens and incoming webhooks: found by the hash of their secret, and only while their owner
 * is a member of their conversation (an owner who left, or whose account went, leaves them dead).
 */
export class Bots {
  constructor(readonly db: Database) {}

  /** Store a bot token's hash. */
  async createBot(bot: { id: string; hash: Buffer; ownerId: number; conversationId: string; name: string; scope: BotScope }): Promise<BotRow> {
    const [row] = await this.db.query<Row>(
      `INSERT INTO bots (id, hash, owner_id, conversation_id, name, scope) VALUES ($1, $2, $3, $4, $5, $6)
       RETURNING id, name, owner_id, conversation_id, scope, created_at`,
      [bot.id, bot.hash, bot.ownerId, bot.conversationId, bot.name, bot.scope],
    );
    return toBot(row!);
  }

  /** A user's bot tokens, oldest first. */
  async botsOf(ownerId: number): Promise<BotRow[]> {
    const rows = await this.db.query<Row>(
      'SELECT id, name, owner_id, conversation_id, scope, created_at FROM bots WHERE owner_id = $1 ORDER BY created_at, id',
      [ownerId],
    );
    return rows.map(toBot);
  }

  /** Revoke a bot token of an owner; resolves its hash, or null when it is not theirs. */
  async deleteBot(ownerId: number, id: string): Promise<Buffer | null> {
    const rows = await this.db.query<{ hash: unknown }>('DELETE FROM bots WHERE id = $1 AND owner_id = $2 RETURNING hash', [id, ownerId]);
    return rows[0] ? toBuffer(rows[0].hash) : null;
  }

  /** The bot of a token hash, while its owner is a member of its conversation. */
  async liveBot(hash: Buffer): Promise<LiveBot | null> {
    const rows = await this.db.query<Row>(
      `SELECT b.id, b.name, b.owner_id, b.conversation_id, b.scope, b.created_at, u.name AS owner_name
         FROM bots b JOIN members m ON m.conversation_id = b.conversation_id AND m.user_id = b.owner_id
         JOIN users u ON u.id = b.owner_id WHERE b.hash = $1`,
      [hash],
    );
    return rows[0] ? toBot(rows[0]) : null;
  }

  /** Store a webhook's secret hash. */
  async createWebhook(hook: { id: string; hash: Buffer; ownerId: number; conversationId: string; name: string }): Promise<WebhookRow> {
    const [row] = await this.db.query<Row>(
      `INSERT INTO webhooks (id, hash, owner_id, conversation_id, name) VALUES ($1, $2, $3, $4, $5)
       RETURNING id, name, owner_id, conversation_id, created_at`,
      [hook.id, hook.hash, hook.ownerId, hook.conversationId, hook.name],
    );
    return toWebhook(row!);
  }

  /** A user's webhooks in a conversation, oldest first. */
  async webhooksOf(ownerId: number, conversationId: string): Promise<WebhookRow[]> {
    const rows = await this.db.query<Row>(
      `SELECT id, name, owner_id, conversation_id, created_at FROM webhooks WHERE owner_id = $1 AND conversation_id = $2
       ORDER BY created_at, id`,
      [ownerId, conversationId],
    );
    return rows.map(toWebhook);
  }

  /** Delete a webhook of an owner in a conversation; false when there is none such. */
  async deleteWebhook(ownerId: number, conversationId: string, id: string): Promise<boolean> {
    const rows = await this.db.query('DELETE FROM webhooks WHERE id = $1 AND owner_id = $2 AND conversation_id = $3 RETURNING id', [
      id,
      ownerId,
      conversationId,
    ]);
    return rows.length > 0;
  }

  /** The webhook of a secret hash, while its creator is a member of its conversation. */
  async liveWebhook(hash: Buffer): Promise<LiveWebhook | null> {
    const rows = await this.db.query<Row>(
      `SELECT w.id, w.name, w.owner_id, w.conversation_id, w.created_at, u.name AS owner_name
         FROM webhooks w JOIN members m ON m.conversation_id = w.conversation_id AND m.user_id = w.owner_id
         JOIN users u ON u.id = w.owner_id WHERE w.hash = $1`,
      [hash],
    );
    return rows[0] ? toWebhook(rows[0]) : null;
  }
}
