import type { Singles } from '../store/store.js';
import type { ReceiptEvent } from './events.js';

/** A receipt entry as a poll shows it (the payload is what the store wrote: user, status, up_to, at). */
export function receiptEvent(conversationId: string | null, payload: Record<string, unknown> | null): ReceiptEvent {
  return { type: 'receipt', conversation: conversationId, ...payload } as ReceiptEvent;
}

/** The receipt events that travel with wake-ups: one per user whose only new entry is a receipt. */
export function receiptEvents(singles: Singles): Map<number, ReceiptEvent> {
  const events = new Map<number, ReceiptEvent>();
  for (const [userId, s] of singles) if (s.payload) events.set(userId, receiptEvent(s.conversationId, s.payload));
  return events;
}
