import type { MemberPosition, Role, StoredMessage, WhoCanAdd } from '../store/store.js';

/** What the API shows: messages and conversations as one viewer sees them, and how their status is worked out. */

/** A message as the API shows it. */
export interface MessageView {
  id: string;
  conversation: string;
  seq: number;
  from: string;
  text: string;
  attachment?: unknown;
  client_id?: string;
  sent_at: string;
  status?: 'sent' | 'delivered' | 'read';
  delivered_to?: string[];
  read_by?: string[];
  /** Posted through a bot token or an incoming webhook: its name. */
  bot?: string;
  /** The message this one replies to, as it is now (its text cut to 200 characters; "" once deleted). */
  reply_to?: { id: string; from: string; text: string; deleted?: true };
  /** When it was last edited. */
  edited_at?: string;
  /** Deleted for everyone: a tombstone (text "", no attachment, no reactions). */
  deleted?: true;
  /** Who reacted with what: each emoji in first-use order, with the names of who chose it. */
  reactions?: Array<{ emoji: string; users: string[] }>;
  /**
   * RETENTION=until-delivered: the server no longer holds this message's original text and file
   * (only in change events): keep your own copy of them and apply the rest of the view.
   */
  purged?: true;
}

/** A conversation as the API shows it. */
export interface ConversationView {
  id: string;
  kind: 'direct' | 'group';
  title: string | null;
  members: string[];
  /** Groups: the owner, the admins, and what members who join later may read. */
  owner?: string | null;
  admins?: string[];
  history?: 'joined' | 'all';
  /** Groups: who may add members and manage invite links (`admins`: the owner and admins; `members`: everyone). */
  who_can_add?: WhoCanAdd;
  /** In my list: whether I consented to it (false: a request someone made of me). */
  accepted?: boolean;
  unread?: number;
  last_message?: MessageView | null;
}


/** A group's owner and admins, from its members' roles. */
export function rolesOf(members: ReadonlyArray<{ name: string; role: Role }>): { owner: string | null; admins: string[] } {
  return { owner: members.find((m) => m.role === 'owner')?.name ?? null, admins: members.filter((m) => m.role === 'admin').map((m) => m.name) };
}

/** Member names in the order the store lists them (byte order, as ORDER BY name COLLATE "C"). */
export function byName(names: string[]): string[] {
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A message as `viewer` sees it: their own with client_id and status (from the others' positions). */
export function viewOf(m: StoredMessage, text: string, viewer: number, kind: 'direct' | 'group', others: readonly MemberPosition[]): MessageView {
  const view: MessageView = {
    id: m.id,
    conversation: m.conversationId,
    seq: m.seq,
    from: m.senderName,
    text,
    sent_at: m.sentAt.toISOString(),
  };
  if (m.attachment) view.attachment = m.attachment;
  if (m.bot) view.bot = m.bot;
  if (m.clientId !== null && m.senderId === viewer) view.client_id = m.clientId;
  if (m.senderId === viewer) Object.assign(view, statusOf(m.seq, others, kind));
  return view;
}

/** Status of a message of mine from the other members' positions. */
export function statusOf(
  seq: number,
  others: readonly MemberPosition[],
  kind: 'direct' | 'group',
): Pick<MessageView, 'status' | 'delivered_to' | 'read_by'> {
  // A member who joined after the message never gets it: they do not hold its status back. One
  // who has not consented to the conversation shares no read receipts (delivered is the server's
  // own fact: a device of theirs has it).
  others = others.filter((o) => o.fromSeq < seq).map((o) => (o.accepted ? o : { ...o, readSeq: 0 }));
  const deliveredTo = others.filter((o) => o.deliveredSeq >= seq).map((o) => o.name);
  const readBy = others.filter((o) => o.readSeq >= seq).map((o) => o.name);
  const status =
    others.length > 0 && readBy.length === others.length
      ? 'read'
      : others.length > 0 && deliveredTo.length === others.length
        ? 'delivered'
        : 'sent';
  return kind === 'group' ? { status, delivered_to: deliveredTo, read_by: readBy } : { status };
}
