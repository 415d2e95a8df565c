import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import type { Echoes, Heads } from '../store/store.js';

/** The bus channel of a user's stream: "user U has news at N", or an ephemeral event (typing). */
export function userChannel(userId: number): string {
  return `u:${userId}`;
}

/** A wake-up as it travels: the new head and when it was published (for the latency histogram). */
export type Wake =
  | { kind: 'head'; head: number; sentAt: number; echoOf?: string }
  | { kind: 'ephemeral'; event: Record<string, unknown> };

/** Encode a head wake-up: "head publishedAtMs [device]"; device: the entry is that device's own message. */
export function encodeHead(head: number, at: number, echoOf?: string): string {
  return echoOf ? `${head} ${at} ${echoOf}` : `${head} ${at}`;
}

/** Decode what arrives on a user channel; null for anything malformed. */
export function decodeWake(payload: string): Wake | null {
  if (payload.startsWith('{')) {
    try {
      const event = JSON.parse(payload) as unknown;
      return typeof event === 'object' && event !== null ? { kind: 'ephemeral', event: event as Record<string, unknown> } : null;
    } catch {
      return null;
    }
  }
  const [h, t, device] = payload.split(' ');
  const head = Number(h);
  if (!Number.isSafeInteger(head)) return null;
  return device ? { kind: 'head', head, sentAt: Number(t) || 0, echoOf: device } : { kind: 'head', head, sentAt: Number(t) || 0 };
}

/**
 * Publishes wake-ups after a commit. Carries nothing that is not in the database: a lost wake-up
 * costs latency (the parked request times out and the next poll reads it), never a message.
 */
export class Notifier {
  private readonly log: Logger;
  constructor(private readonly bus: Bus, log: Logger, private readonly now: () => number = Date.now) {
    this.log = log.child({ module: 'notifier' });
  }

  /** Tell every node with a parked request of these users where their streams now end. */
  wake(heads: Heads, echoes?: Echoes): void {
    if (heads.size === 0) return;
    const at = this.now();
    const items = [...heads].map(([userId, head]) => {
      const echo = echoes?.get(userId);
      return [userChannel(userId), encodeHead(head, at, echo?.head === head ? echo.device : undefined)] as const;
    });
    this.bus.publishMany(items).catch((err: unknown) => this.log.warn({ err }, 'wake-up publish failed'));
  }

  /** Send an event that is not stored (typing) to users' parked requests. */
  ephemeral(userIds: readonly number[], event: Record<string, unknown>): void {
    if (userIds.length === 0) return;
    const payload = JSON.stringify(event);
    this.bus
      .publishMany(userIds.map((id) => [userChannel(id), payload] as const))
      .catch((err: unknown) => this.log.warn({ err }, 'ephemeral publish failed'));
  }
}
