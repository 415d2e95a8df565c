import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Envelope encryption: a master key (from MASTER_KEY) wraps one data key per conversation;
 * message text and blobs are sealed with the conversation's data key. AES-256-GCM throughout.
 * Sealed layout: version byte (1) | 12-byte nonce | ciphertext | 16-byte tag.
 */
const VERSION = 1;
const NONCE = 12;
const TAG = 16;

/** Seal plaintext with a 32-byte key; `aad` binds the ciphertext to where it is stored. */
export function seal(key: Buffer, plaintext: Buffer, aad: string): Buffer {
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([Buffer.from([VERSION]), nonce, body, cipher.getAuthTag()]);
}

/** Open what `seal` made; throws if the key, the aad or a single byte is wrong. */
export function open(key: Buffer, sealed: Buffer, aad: string): Buffer {
  if (sealed.length < 1 + NONCE + TAG || sealed[0] !== VERSION) throw new Error('not a sealed value');
  const nonce = sealed.subarray(1, 1 + NONCE);
  const tag = sealed.subarray(sealed.length - TAG);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(sealed.subarray(1 + NONCE, sealed.length - TAG)), decipher.final()]);
}

/** A fresh random 32-byte data key. */
export function newDataKey(): Buffer {
  return randomBytes(32);
}

/** Wrap a conversation's data key with the master key (aad: the conversation id). */
export function wrapKey(master: Buffer, dataKey: Buffer, conversationId: string): Buffer {
  return seal(master, dataKey, `key:${conversationId}`);
}

/** Unwrap what `wrapKey` made. */
export function unwrapKey(master: Buffer, wrapped: Buffer, conversationId: string): Buffer {
  return open(master, wrapped, `key:${conversationId}`);
}

/** Parse MASTER_KEY: 64 hex characters or base64 of exactly 32 bytes. */
export function parseMasterKey(text: string): Buffer {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) {
    const b = Buffer.from(t, 'base64');
    if (b.length === 32) return b;
  }
  throw new Error('MASTER_KEY must be 64 hex characters or base64 of 32 bytes');
}
