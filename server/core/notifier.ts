import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import type { Echoes, Heads } from '../store/store.js';
import type { StreamEvent } from './events.js';

/** The bus channel of a user's stream: "user U has news at N", or an ephemeral event (typing). */
export function userChannel(userId: number): string {
  return `u:${userId}`;
}

/**
 * A wake-up as it travels: the new head and when it was published (for the latency histogram);
 * `event`: the entry at `head`, rendered for the user, when that commit gave them only that one.
 */
export type Wake =
  | { kind: 'head'; head: number; sentAt: number; echoOf?: string; event?: StreamEvent }
  | { kind: 'ephemeral'; event: StreamEvent };

/** Events carried by wake-ups: larger ones are left to be read from the database. */
export const CARRY_MAX_BYTES = 8 * 1024;

/**
 * Encode a head wake-up: "head publishedAtMs [device]", then optionally a newline and the entry's
 * event as JSON. device: the entry is that device's own message.
 */
export function encodeHead(head: number, at: number, echoOf?: string, event?: string): string {
  const line = echoOf ? `${head} ${at} ${echoOf}` : `${head} ${at}`;
  return event === undefined ? line : `${line}\n${event}`;
}

/**
 * Decode what arrives on a user channel; null for anything malformed. Carried events are trusted
 * as StreamEvents: only Notifier publishes on user channels.
 */
export function decodeWake(payload: string): Wake | null {
  if (payload.startsWith('{')) {
    try {
      const event = JSON.parse(payload) as unknown;
      return typeof event === 'object' && event !== null ? { kind: 'ephemeral', event: event as StreamEvent } : null;
    } catch {
      return null;
    }
  }
  const nl = payload.indexOf('\n');
  const [h, t, device] = (nl < 0 ? payload : payload.slice(0, nl)).split(' ');
  const head = Number(h);
  if (!Number.isSafeInteger(head) || head <= 0) return null;
  const wake: Wake = { kind: 'head', head, sentAt: Number(t) || 0 };
  if (device) wake.echoOf = device;
  if (nl >= 0) {
    try {
      const event = JSON.parse(payload.slice(nl + 1)) as unknown;
      if (typeof event === 'object' && event !== null && !Array.isArray(event)) wake.event = event as StreamEvent;
    } catch {
      // a head without its event is still a wake-up: the poll reads the entry instead
    }
  }
  return wake;
}

/**
 * Publishes wake-ups after a commit. Carries nothing that is not already committed: a lost
 * wake-up costs latency (the parked request times out and the next poll reads it), never a
 * message. A carried event is a copy of a committed entry, in transit and in the receiving
 * node's memory only (the database keeps it sealed).
 */
export class Notifier {
  private readonly log: Logger;
  constructor(private readonly bus: Bus, log: Logger, private readonly now: () => number = Date.now) {
    this.log = log.child({ module: 'notifier' });
  }

  /**
   * Tell every node with a parked request of these users where their streams now end. `events`:
   * for users who got exactly one entry, that entry as their poll would render it; it travels
   * with the wake-up (when small) so the woken poll answers without reading it back. (Typed
   * loosely: messaging builds its message events as records; they are MessageEvents.)
   */
  wake(heads: Heads, echoes?: Echoes, events?: ReadonlyMap<number, Record<string, unknown>>): void {
    if (heads.size === 0) return;
    const at = this.now();
    const serialised = new Map<Record<string, unknown>, string | undefined>(); // an event shared by many users: once
    const items = [...heads].map(([userId, head]) => {
      const echo = echoes?.get(userId);
      const event = events?.get(userId);
      let json: string | undefined;
      if (event !== undefined) {
        if (!serialised.has(event)) {
          const text = JSON.stringify(event);
          serialised.set(event, text.length > CARRY_MAX_BYTES ? undefined : text);
        }
        json = serialised.get(event);
      }
      return [userChannel(userId), encodeHead(head, at, echo?.head === head ? echo.device : undefined, json)] as const;
    });
    this.bus.publishMany(items).catch((err: unknown) => this.log.warn({ err }, 'wake-up publish failed'));
  }

  /** Send an event that is not stored (typing) to users' parked requests. */
  ephemeral(userIds: readonly number[], event: StreamEvent): void {
    if (userIds.length === 0) return;
    const payload = JSON.stringify(event);
    this.bus
      .publishMany(userIds.map((id) => [userChannel(id), payload] as const))
      .catch((err: unknown) => this.log.warn({ err }, 'ephemeral publish failed'));
  }
}
