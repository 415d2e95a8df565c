import { newDataKey, open, seal, unwrapKey, wrapKey } from './crypto.js';

/** How many unwrapped conversation keys a node keeps; each is 32 bytes, the cap only bounds the map. */
const CACHE_LIMIT = 10_000;

/**
 * The keyring: makes, wraps and unwraps per-conversation data keys with the master key, and seals
 * message text. Unwrapped keys are cached (unwrapping is an AES-GCM open per message otherwise).
 */
export class Keyring {
  private readonly cache = new Map<string, Buffer>();
  constructor(private readonly master: Buffer) {}

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
    const key = unwrapKey(this.master, wrapped, conversationId);
    this.remember(conversationId, key);
    return key;
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
    if (this.cache.size >= CACHE_LIMIT) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(id, key);
  }
}
