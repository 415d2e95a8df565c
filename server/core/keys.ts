import { LRUCache } from 'lru-cache';
import { newDataKey, open, seal, unwrapKey, wrapKey } from './crypto.js';

/** How many unwrapped conversation keys a node keeps; each is 32 bytes, the cap only bounds the map. */
const CACHE_LIMIT = 10_000;

/**
 * The keyring: makes, wraps and unwraps per-conversation data keys with the master key, and seals
 * message text. Unwrapped keys are cached (unwrapping is an AES-GCM open per message otherwise).
 */
export class Keyring {
  private readonly cache = new LRUCache<string, Buffer>({ max: CACHE_LIMIT });
  /**
   * `master` wraps new keys; `previous` master keys (MASTER_KEY_PREVIOUS, during a rotation) only
   * unwrap keys that `npm run rotate-master-key` has not re-wrapped yet.
   */
  constructor(
    private readonly master: Buffer,
    private readonly previous: readonly Buffer[] = [],
  ) {}

  /** A new data key for a conversation, and its wrapped form to store. */
  create(conversationId: string): { key: Buffer; wrapped: Buffer } {
    const key = newDataKey();
    this.remember(conversationId, key);
    return { key, wrapped: wrapKey(this.master, key, conversationId) };
  }

  /** The data key of a conversation from its stored wrapped form. */
  key(conversationId: string, wrapped: Buffer): Buffer {
    const hit = this.cache.get(conversationId);
    if (hit) return hit;
    const key = this.unwrap(conversationId, wrapped).key;
    this.remember(conversationId, key);
    return key;
  }

  /**
   * The wrapped form under the current master key of a key wrapped under a previous one; null when
   * it already is under the current one. The data key itself never changes (no message is touched).
   */
  rewrap(conversationId: string, wrapped: Buffer): Buffer | null {
    const { key, current } = this.unwrap(conversationId, wrapped);
    return current ? null : wrapKey(this.master, key, conversationId);
  }

  private unwrap(conversationId: string, wrapped: Buffer): { key: Buffer; current: boolean } {
    for (const [i, master] of [this.master, ...this.previous].entries()) {
      try {
        return { key: unwrapKey(master, wrapped, conversationId), current: i === 0 };
      } catch {
        // not this master key: try the next
      }
    }
    throw new Error(`the key of conversation ${conversationId} opens with neither MASTER_KEY nor MASTER_KEY_PREVIOUS`);
  }

  /** Seal a message text; the aad binds it to its conversation and message id. */
  sealText(key: Buffer, conversationId: string, messageId: string, text: string): Buffer {
    return seal(key, Buffer.from(text, 'utf8'), `msg:${conversationId}:${messageId}`);
  }

  /** Open a sealed message text. */
  openText(key: Buffer, conversationId: string, messageId: string, body: Buffer): string {
    return open(key, body, `msg:${conversationId}:${messageId}`).toString('utf8');
  }

  private remember(id: string, key: Buffer): void {
    this.cache.set(id, key);
  }
}
