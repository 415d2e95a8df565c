import type { Singles } from '../store/store.js';

/** A receipt entry as a poll shows it. */
export function receiptEvent(conversationId: string | null, payload: Record<string, unknown> | null): Record<string, unknown> {
  return { type: 'receipt', conversation: conversationId, ...payload };
}

/** The receipt events that travel with wake-ups: one per user whose only new entry is a receipt. */
export function receiptEvents(singles: Singles): Map<number, Record<string, unknown>> {
  const events = new Map<number, Record<string, unknown>>();
  for (const [userId, s] of singles) if (s.payload) events.set(userId, receiptEvent(s.conversationId, s.payload));
  return events;
}
