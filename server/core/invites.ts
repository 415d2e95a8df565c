import { createHash, randomBytes } from 'node:crypto';
import type { InviteLookup, Store } from '../store/store.js';
import type { Principal } from './accounts.js';
import { mayAdd, type Conversations } from './conversations.js';
import { open, seal } from './crypto.js';
import { errors } from './errors.js';
import type { ConversationView } from './views.js';

/** Invite links expire after this by default (seconds): 7 days. */
export const INVITE_DEFAULT_S = 7 * 86_400;
/** and after at most this (seconds): 30 days. */
export const INVITE_MAX_S = 30 * 86_400;
/** Working invite links a group may have at once. */
export const INVITES_PER_GROUP = 100;
/** A code: 18 random bytes (144 bits), base64url. */
const CODE = /^[A-Za-z0-9_-]{24}$/;

/** An invite link as those who manage the group see it. */
export interface InviteView {
  code: string;
  /** The page that opens it: `/join/<code>` (the HTTP layer makes it absolute). */
  path: string;
  expires_at: string;
  created_by: string;
}

/** What anyone signed in who holds a link sees of it before joining. */
export interface InvitePreview {
  title: string | null;
  members: number;
  expires_at: string;
}

/** The stored, unguessable handle of a code: its SHA-256 (the code itself is never stored in the clear). */
function hashOf(code: string): Buffer {
  return createHash('sha256').update(code).digest();
}

function gone() {
  return errors.gone('this invite link was revoked or has expired', 'invite_gone');
}

/**
 * Invite links to groups. Whoever may add members to a group (conversations.requireAdder) creates,
 * lists and revokes its links; anyone signed in who holds one previews it and joins by it (joining
 * is consent). A link stops working when it expires, is revoked, its creator may no longer add
 * members (they left, or lost the role that let them), or the group is empty.
 */
export class Invites {
  constructor(
    private readonly store: Store,
    private readonly conversations: Conversations,
  ) {}

  /** A new link to my group, expiring in `expiresIn` seconds (default 7 days, at most 30). */
  async create(me: Principal, conversationId: unknown, expiresIn: number = INVITE_DEFAULT_S): Promise<InviteView> {
    if (!Number.isInteger(expiresIn) || expiresIn < 1 || expiresIn > INVITE_MAX_S) {
      throw errors.badRequest(`expires_in must be 1-${INVITE_MAX_S} seconds`, 'bad_expires_in');
    }
    const conv = await this.conversations.requireAdder(conversationId, me);
    if ((await this.store.invitesOf(conv.id)).length >= INVITES_PER_GROUP) {
      throw errors.conflict(`a group has at most ${INVITES_PER_GROUP} working invite links; revoke some`, 'too_many_invites');
    }
    const code = randomBytes(18).toString('base64url');
    const sealedCode = seal(this.conversations.keyOf(conv), Buffer.from(code), `invite:${conv.id}`);
    const { expiresAt } = await this.store.createInvite({ codeHash: hashOf(code), conversationId: conv.id, sealedCode, createdBy: me.id, expiresInSeconds: expiresIn });
    return { code, path: `/join/${code}`, expires_at: expiresAt.toISOString(), created_by: me.name };
  }

  /** My group's links that still work, newest first. */
  async list(me: Principal, conversationId: unknown): Promise<InviteView[]> {
    const conv = await this.conversations.requireAdder(conversationId, me);
    const key = this.conversations.keyOf(conv);
    return (await this.store.invitesOf(conv.id)).map((r) => {
      const code = open(key, r.sealedCode, `invite:${conv.id}`).toString();
      return { code, path: `/join/${code}`, expires_at: r.expiresAt.toISOString(), created_by: r.createdByName };
    });
  }

  /** Revoke a link of my group: it answers 410 from now on. 404 when the group has no such link. */
  async revoke(me: Principal, conversationId: unknown, code: unknown): Promise<void> {
    const conv = await this.conversations.requireAdder(conversationId, me);
    if (typeof code !== 'string' || !CODE.test(code) || !(await this.store.revokeInvite(conv.id, hashOf(code)))) {
      throw errors.notFound('invite');
    }
  }

  /** What a link leads to: the group's title, how many members it has, when the link expires. */
  async preview(_me: Principal, code: unknown): Promise<InvitePreview> {
    const invite = await this.usable(code);
    return { title: invite.title, members: invite.members, expires_at: invite.expiresAt.toISOString() };
  }

  /** Join the group of a link (consent; counts toward MAX_MEMBERS); the group's view. */
  async join(me: Principal, code: unknown): Promise<ConversationView> {
    const invite = await this.usable(code);
    return this.conversations.join(me, invite.conversationId);
  }

  /** The invite of a code if it still works: 404 for an unknown code, 410 `invite_gone` otherwise. */
  private async usable(code: unknown): Promise<InviteLookup> {
    if (typeof code !== 'string' || !CODE.test(code)) throw errors.notFound('invite');
    const invite = await this.store.inviteByHash(hashOf(code));
    if (!invite) throw errors.notFound('invite');
    const creatorMayAdd = invite.creatorRole !== null && mayAdd(invite.creatorRole, invite.whoCanAdd);
    if (!invite.live || invite.members === 0 || !creatorMayAdd) throw gone();
    return invite;
  }
}
