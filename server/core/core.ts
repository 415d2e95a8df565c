import type { Logger } from 'pino';
import type { Bus } from '../bus/bus.js';
import type { Store } from '../store/store.js';
import type { Blobs } from '../blobs/blobs.js';
import { Accounts } from './accounts.js';
import { Contacts } from './contacts.js';
import { Archive } from './archive.js';
import { Bots } from './bots.js';
import { MessageChanges } from './changes.js';
import { Retention } from './retention.js';
import { FileGrants } from './file-grants.js';
import { Invites } from './invites.js';
import { Keyring } from './keys.js';
import { Limits, NO_LIMITS, type LimitSettings } from './limits.js';
import { Logins } from './logins.js';
import { HistoryQueries } from './mam.js';
import { Messaging } from './messaging.js';
import { Notifier } from './notifier.js';
import { Presence } from './presence.js';
import { EventsPruning } from './pruning.js';
import { Streams } from './streams.js';
import { UploadSlots } from './upload-slots.js';
import { Uploads } from './uploads.js';

/** The domain, assembled: what the HTTP routes and the transports call. No express, pg or ioredis here. */
export class Core {
  readonly accounts: Accounts;
  /** Every rate limit, for every door. */
  readonly limits: Limits;
  /** The login rule of every door: counted, then checked. */
  readonly logins: Logins;
  /** Short-lived signed grants for file URLs (instead of the token in them). */
  readonly fileGrants: FileGrants;
  readonly keys: Keyring;
  readonly notifier: Notifier;
  readonly messaging: Messaging;
  /** Archive queries (XEP-0313 over BOSH): history paged by message id and bounded by time. */
  readonly historyQueries: HistoryQueries;
  /** Invite links to groups. */
  readonly invites: Invites;
  readonly streams: Streams;
  readonly presence: Presence;
  /** Contacts with their presence, where they consented to share it. */
  readonly contacts: Contacts;
  /** Bot tokens and incoming webhooks: acting for their owner in one conversation. */
  readonly bots: Bots;
  readonly archive: Archive;
  /** The upload use case (the JSON files route, XEP-0363 slots). */
  readonly uploads: Uploads;
  /** XEP-0363 slots: PUT now, attached to a conversation by the message that carries the GET URL. */
  readonly uploadSlots: UploadSlots;
  /** Edits, deletes for everyone, replies and reactions (issue 13). */
  readonly changes: MessageChanges;
  /** Empties delivered messages when RETENTION=until-delivered; idle otherwise. */
  readonly retention: Retention;
  /** Deletes acknowledged stream entries older than the retention, hourly. */
  readonly pruning: EventsPruning;
  private readonly untilDelivered: boolean;
  private readonly archiveAfterMs: number | undefined;

  constructor(opts: {
    store: Store;
    bus: Bus;
    /** Blob storage: archive chunks live there. */
    blobs: Blobs;
    /** Archive messages older than this, hourly (ARCHIVE_AFTER_DAYS); unset: only `npm run archive` does. */
    archiveAfterMs?: number;
    /** RETENTION: keep messages (`forever`) or empty them once delivered (`until-delivered`). */
    retention?: 'forever' | 'until-delivered';
    /** Keep acknowledged stream entries this long (EVENTS_RETENTION_DAYS; default 30 days). */
    eventsRetentionMs?: number;
    masterKey: Buffer;
    /** Master keys being rotated away from (MASTER_KEY_PREVIOUS). */
    previousMasterKeys?: readonly Buffer[];
    nodeId: string;
    log: Logger;
    presenceTimeoutMs?: number;
    onSent?: (n: number) => void;
    /** Rate limits (from the configuration); off when not given. */
    limits?: LimitSettings;
    /** log2 of scrypt's N for new and rehashed passwords (PASSWORD_COST). */
    passwordCost?: number;
    /** Tokens unused this long expire (TOKEN_TTL_DAYS). */
    tokenTtlMs?: number;
    /** UPLOAD_LIMIT and IMAGE_PIXEL_LIMIT (defaults: the configuration's). */
    uploadLimit?: number;
    imagePixelLimit?: number;
  }) {
    this.accounts = new Accounts(opts.store, opts.bus, { passwordCost: opts.passwordCost, tokenTtlMs: opts.tokenTtlMs });
    this.limits = new Limits(opts.bus, opts.limits ?? NO_LIMITS);
    this.logins = new Logins(this.accounts, this.limits);
    this.fileGrants = new FileGrants(opts.masterKey);
    this.keys = new Keyring(opts.masterKey, opts.previousMasterKeys);
    this.notifier = new Notifier(opts.bus, opts.log);
    this.archive = new Archive(opts.store, opts.blobs, this.keys, opts.log.child({ module: 'archive' }));
    this.archiveAfterMs = opts.archiveAfterMs;
    this.retention = new Retention(opts.store, opts.blobs, opts.log.child({ module: 'retention' }));
    this.untilDelivered = opts.retention === 'until-delivered';
    this.pruning = new EventsPruning(opts.store, opts.eventsRetentionMs ?? 30 * 86_400_000, opts.log.child({ module: 'pruning' }));
    this.messaging = new Messaging(opts.store, this.keys, this.notifier, this.archive, opts.log, opts.onSent);
    this.invites = new Invites(opts.store, this.messaging);
    this.changes = new MessageChanges(opts.store, this.keys, this.notifier, this.messaging, opts.blobs, opts.log);
    this.messaging.changes = this.changes;
    this.historyQueries = new HistoryQueries(opts.store, this.messaging, this.archive);
    this.streams = new Streams(opts.store, this.messaging, this.notifier, opts.log);
    this.presence = new Presence(opts.bus, opts.store, this.notifier, opts.nodeId, opts.log, opts.presenceTimeoutMs);
    this.contacts = new Contacts(opts.store, this.presence);
    this.bots = new Bots(opts.store, opts.bus, this.messaging, this.limits);
    this.accounts.botTokens = this.bots;
    this.uploads = new Uploads({
      db: opts.store.db,
      blobs: opts.blobs,
      messaging: this.messaging,
      limits: this.limits,
      uploadLimit: opts.uploadLimit ?? 25_000_000,
      imagePixelLimit: opts.imagePixelLimit ?? 50_000_000,
      log: opts.log.child({ module: 'files' }),
    });
    this.uploadSlots = new UploadSlots({
      uploads: this.uploads, messaging: this.messaging, limits: this.limits, bus: opts.bus, keys: this.keys, blobs: opts.blobs, log: opts.log.child({ module: 'files' }),
    });
  }

  /** Start background work: logout broadcasts, presence sweeping (holding: users with parked requests here). */
  async start(holding?: () => Iterable<number>): Promise<void> {
    await this.accounts.start();
    await this.bots.start();
    this.presence.start(holding);
    if (this.archiveAfterMs !== undefined) this.archive.start(this.archiveAfterMs);
    if (this.untilDelivered) this.retention.start();
    this.pruning.start();
  }

  /** Stop background work and flush what is pending. */
  async stop(): Promise<void> {
    await this.archive.stop();
    await this.retention.stop();
    await this.pruning.stop();
    await this.presence.stop();
    await this.bots.stop();
    await this.accounts.stop();
  }
}
