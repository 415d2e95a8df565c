/**
 * The events of a user's stream, as a poll answers them and as wake-ups carry them: the one
 * vocabulary every transport renders (long-poll as JSON, BOSH as stanzas). Stored entries become
 * these in Streams.read; messages, receipts and typing also travel in wake-ups (notifier.ts).
 */
import type { ConversationView, MessageView } from './messaging.js';

/** A message in one of my conversations (mine included: its status is in the view). */
export type MessageEvent = { type: 'message'; message: MessageView };

/** Members moved their delivered or read position in a conversation where I sent messages. */
export type ReceiptEvent = {
  type: 'receipt';
  conversation: string;
  user: string;
  status: 'delivered' | 'read';
  /** The conversation seq up to which the user has the messages delivered or read. */
  up_to: number;
  at: string;
};

/** A contact came online or went offline. */
export type PresenceEvent = { type: 'presence'; user: string; online: boolean; last_seen: string };

/**
 * What happened to a conversation of mine (absent in entries written before changes were named).
 * Groups: `member_left` (a member left by themselves), `owner_changed` (transferred, or passed on
 * when the owner left), `renamed` (its title), `settings_changed` (history, who_can_add).
 */
export type ConversationChange =
  | 'created'
  | 'accepted'
  | 'member_added'
  | 'member_removed'
  | 'member_left'
  | 'owner_changed'
  | 'role_changed'
  | 'renamed'
  | 'settings_changed';

/** A conversation was created, accepted or changed. */
export type ConversationEvent = { type: 'conversation'; conversation: ConversationView; change?: ConversationChange };

/** Someone is typing in a conversation of mine: never stored, only carried by wake-ups. */
export type TypingEvent = { type: 'typing'; conversation: string; user: string; at: string };

/** A message of one of my conversations was edited, deleted for everyone, or its reactions changed: the message as it is now. */
export type MessageChangedEvent = {
  type: 'message_changed';
  change: 'edited' | 'deleted' | 'reactions';
  message: MessageView;
  /** Who made the change (the sender, a group admin who deleted it, the user who reacted). */
  by?: string;
};

/** Every event a stream or a wake-up carries. */
export type StreamEvent = MessageEvent | ReceiptEvent | PresenceEvent | ConversationEvent | TypingEvent | MessageChangedEvent;
