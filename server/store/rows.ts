import { toBuffer } from './db.js';

/** The shapes the Store takes and gives back, and the mappers from database rows to them. */

/** A user row. */
export interface UserRow {
  id: number;
  name: string;
  pass_hash: string;
  last_seen: Date | null;
}

/** A conversation row. */
export interface ConversationRow {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  wrapped_key: Buffer;
  last_seq: number;
  created_at: Date;
  /** What a new member of a group may read: from when they joined, or everything. */
  history: 'joined' | 'all';
  /** Who may add members to a group (and manage its invite links): its owner and admins, or every member. */
  who_can_add: WhoCanAdd;
}

/** Who may add members to a group. */
export type WhoCanAdd = 'admins' | 'members';

/** A message as stored (body sealed). */
export interface StoredMessage {
  id: string;
  conversationId: string;
  seq: number;
  senderId: number;
  senderName: string;
  sentAt: Date;
  body: Buffer;
  clientId: string | null;
  attachment: unknown | null;
  /** The bot or webhook it was posted through (its name), when not by the person themselves. */
  bot?: string | null;
}

/** One entry of a user's event stream. Message entries carry the message row. */
export interface StreamEntry {
  seq: number;
  type: string;
  conversationId: string | null;
  payload: Record<string, unknown> | null;
  createdAt: Date;
  /** For a message entry: the message's seq in its conversation (also when the row was archived). */
  msgSeq: number | null;
  /** The message row; null for a message entry whose message was archived or emptied once delivered. */
  message: StoredMessage | null;
}

/** An entry to append to a user's stream. */
export interface NewEntry {
  userId: number;
  type: string;
  conversationId?: string | null;
  msgSeq?: number | null;
  senderId?: number | null;
  payload?: Record<string, unknown> | null;
}

/** A message to insert (already sealed). */
export interface NewMessage {
  id: string;
  conversationId: string;
  senderId: number;
  /** The sending device (not stored): its own echo need not wake it. */
  device?: string | null;
  body: Buffer;
  clientId: string | null;
  attachment: unknown | null;
  /** Posted through a bot or webhook: its name (stored with the message). */
  bot?: string | null;
}

/** A conversation to create (its key already wrapped). */
export interface NewConversation {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  wrappedKey: Buffer;
  ownerId: number;
  /** Every member, the owner included; for a direct conversation, exactly the two. */
  memberIds: number[];
  /** For a group: what members who join later may read (default: from when they joined). */
  history?: 'joined' | 'all';
}

/** Outcome of one open of a batch: the conversation's id, and whether this open created it. */
export interface OpenOutcome {
  id: string;
  created: boolean;
}

/** Outcome of one message of a batch. */
export type SendOutcome =
  | { ok: true; message: StoredMessage; created: boolean }
  | { ok: false; reason: 'not_member' | 'no_conversation' };

/** A member's role: the owner (one, the creator), admins (add and remove members), members. */
export type Role = 'owner' | 'admin' | 'member';

/** A member's delivery and read position. */
export interface MemberPosition {
  conversationId: string;
  userId: number;
  name: string;
  deliveredSeq: number;
  readSeq: number;
  role: Role;
  /** The member reads messages after this seq (where the conversation stood when they joined). */
  fromSeq: number;
  /** The member consented to the conversation (opened it, sent in it, or accepted it). */
  accepted: boolean;
}

/** Read positions of a conversation for one viewer, plus its summary. */
export interface ConversationSummary {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  wrappedKey: Buffer;
  lastSeq: number;
  readSeq: number;
  unread: number;
  /** Every member with their role, by name (byte order). */
  roster: Array<{ name: string; role: Role }>;
  history: 'joined' | 'all';
  whoCanAdd: WhoCanAdd;
  /** The viewer consented to it (opened it, sent in it, or accepted it). */
  accepted: boolean;
  lastMessage: StoredMessage | null;
}

/** A contact: someone who shares a conversation with the viewer. */
export interface ContactRow {
  id: number;
  name: string;
  lastSeen: Date | null;
  conversation: string | null;
  /** The contact accepted a conversation we share: they share their presence and last seen with me. */
  shared: boolean;
  /** Their direct conversation with me waits for my consent (they opened it; I have not replied or accepted). */
  request: boolean;
}

/** A range of a conversation's messages moved from the table into a sealed blob. */
export interface ArchiveChunk {
  conversationId: string;
  fromSeq: number;
  toSeq: number;
  blobKey: string;
}

/** A message row as MESSAGE_COLUMNS selects it. */
export interface MessageRow {
  id: string;
  conversation_id: string;
  seq: number;
  sender_id: number;
  sender_name: string;
  sent_at: Date;
  body: unknown;
  client_id: string | null;
  attachment: unknown;
  bot?: string | null;
}

/** The columns of a MessageRow, from `messages m JOIN users su ON su.id = m.sender_id`. */
export const MESSAGE_COLUMNS = `m.id, m.conversation_id, m.seq, m.sender_id, su.name AS sender_name, m.sent_at, m.body,
  m.client_id, m.attachment, m.bot`;

/** A message row as the Store gives it. */
export function toMessage(r: MessageRow): StoredMessage {
  return {
    id: r.id,
    conversationId: r.conversation_id,
    seq: Number(r.seq),
    senderId: Number(r.sender_id),
    senderName: r.sender_name,
    sentAt: r.sent_at,
    body: toBuffer(r.body),
    clientId: r.client_id,
    attachment: r.attachment ?? null,
    bot: r.bot ?? null,
  };
}

/** An archives row. */
export interface ArchiveRow {
  conversation_id: string;
  from_seq: number;
  to_seq: number;
  blob_key: string;
}

/** An archives row as the Store gives it. */
export function toChunk(r: ArchiveRow): ArchiveChunk {
  return { conversationId: r.conversation_id, fromSeq: Number(r.from_seq), toSeq: Number(r.to_seq), blobKey: r.blob_key };
}
