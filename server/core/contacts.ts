import type { Store } from '../store/store.js';
import type { Principal } from './accounts.js';
import type { Presence } from './presence.js';

/** A contact as the API and BOSH show it. */
export interface ContactView {
  id: number;
  name: string;
  /** What they call themselves ('' when unset). */
  display_name: string;
  /** Online now; false when they do not share their presence with me. */
  online: boolean;
  /** When they were last online; null when never, or when they do not share it with me. */
  last_seen: string | null;
  /** Our direct conversation, if there is one. */
  conversation: string | null;
  /** They accepted a conversation we share, so they share their presence and last seen with me. */
  shared: boolean;
  /** They opened our direct conversation and wait for my consent (a reply, or accepting it). */
  request: boolean;
}

/**
 * Contacts: the people I share a conversation with, with their presence where they consented to
 * share it (they opened, sent in or accepted a conversation with me). One place for the JSON API
 * and BOSH's roster and initial presence.
 */
export class Contacts {
  constructor(
    private readonly store: Store,
    private readonly presence: Presence,
  ) {}

  async of(me: Principal): Promise<ContactView[]> {
    const rows = await this.store.contacts(me.id);
    const presence = await this.presence.of(rows.filter((r) => r.shared).map((r) => ({ id: r.id, lastSeen: r.lastSeen })));
    return rows.map((r) => {
      const p = r.shared ? presence.get(r.id) : undefined;
      return {
        id: r.id,
        name: r.name,
        display_name: r.displayName,
        online: p?.online ?? false,
        last_seen: p?.last_seen ?? null,
        conversation: r.conversation,
        shared: r.shared,
        request: r.request,
      };
    });
  }
}
