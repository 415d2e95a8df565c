import type { Database } from './db.js';
import { Accounts } from './accounts.js';
import { ArchiveStore } from './archive-store.js';
import { Bots } from './bots.js';
import { Contacts } from './contacts.js';
import { Conversations } from './conversations.js';
import { Invites } from './invites.js';
import { Membership } from './membership.js';
import { Messages } from './messages.js';
import { MessageChanges } from './message-changes.js';
import { RetentionStore } from './retention-store.js';
import { Streams, type CarriedEntries, type SenderEchoes, type StreamAppends, type StreamHeads } from './streams.js';

/**
 * All of Parley's SQL, behind domain-shaped methods. It knows rows and sequence numbers, not HTTP
 * nor encryption: bodies arrive sealed and leave sealed. Lock order everywhere:
 * acks → conversations → members → users, each set of rows in key order in one statement, users
 * always last (stream appends), so transactions never wait in a cycle. Writers lock rows FOR NO KEY
 * UPDATE (no key column ever changes): foreign-key checks (KEY SHARE) of other writers pass
 * beside them instead of turning into lock upgrades that deadlock. The SQL functions are in
 * sql/functions/, one file each, re-applied by every migrate. Each aggregate has its own file
 * (server/store/README.md says which); this one assembles them.
 */

export type {
  ArchiveChunk,
  ContactRow,
  ConversationRow,
  ConversationSummary,
  MemberPosition,
  NewConversation,
  NewEntry,
  NewMessage,
  OpenOutcome,
  Role,
  SendOutcome,
  StoredMessage,
  StreamEntry,
  UserRow,
  WhoCanAdd,
} from './rows.js';
export type { InviteLookup, InviteRow } from './invites.js';
export type { CarriedEntries, SenderEchoes, StreamAppends, StreamHeads } from './streams.js';
export type { MembershipChange } from './membership.js';
export type { BotRow, BotScope, LiveBot, LiveWebhook, WebhookRow } from './bots.js';
export type { SendResult } from './messages.js';
export type { ChangeRecipients, EditRow, MessageChangeRow, ReactionRows } from './message-changes.js';
export { changeKey, MAX_REACTIONS_PER_USER } from './message-changes.js';
export { directKey, directKeySql, HAS_CONTENT, hasContent } from './sql-rules.js';

/** Old name of StreamHeads, kept while other branches use it. */
export type Heads = StreamHeads;
/** Old name of SenderEchoes, kept while other branches use it. */
export type Echoes = SenderEchoes;
/** Old name of CarriedEntries, kept while other branches use it. */
export type Singles = CarriedEntries;
/** Old name of StreamAppends, kept while other branches use it. */
export type Appended = StreamAppends;

/** The aggregates whose methods make up the Store, each a class of its own over the same database. */
const AGGREGATES = [Accounts, Conversations, Membership, Invites, Contacts, Messages, MessageChanges, Streams, ArchiveStore, RetentionStore, Bots] as const;

/** Parley's data access: every aggregate's methods on one object, so callers need not know the split. */
export interface Store extends Accounts, Conversations, Membership, Invites, Contacts, Messages, MessageChanges, Streams, ArchiveStore, RetentionStore, Bots {}

/** Parley's data access. */
export class Store {
  constructor(readonly db: Database) {}
}

// Each aggregate's methods run with `this` the Store (they use only `this.db`); a name defined by
// two aggregates would hide one of them, so it fails at load.
for (const aggregate of AGGREGATES) {
  for (const name of Object.getOwnPropertyNames(aggregate.prototype)) {
    if (name === 'constructor') continue;
    if (Object.prototype.hasOwnProperty.call(Store.prototype, name)) throw new Error(`Store.${name} is defined twice`);
    Object.defineProperty(Store.prototype, name, Object.getOwnPropertyDescriptor(aggregate.prototype, name)!);
  }
}
