import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { Keyring } from './keys.js';

/** Conversations read per round trip while rotating. */
const PAGE = 500;

/**
 * Re-wrap every conversation key still wrapped by a previous master key with the current one
 * (`npm run rotate-master-key`). Data keys do not change, so no message or blob is touched. Safe
 * to rerun and beside running nodes: a key is replaced only if it is still the one read.
 */
export async function rotateMasterKey(
  store: Store,
  keys: Keyring,
  log: Logger,
): Promise<{ checked: number; rewrapped: number; failed: number }> {
  let checked = 0;
  let rewrapped = 0;
  let failed = 0;
  let after = '';
  for (;;) {
    const page = await store.wrappedKeys(after, PAGE);
    for (const c of page) {
      checked++;
      let next: Buffer | null;
      try {
        next = keys.rewrap(c.id, c.wrappedKey);
      } catch (err) {
        // A key neither master key opens: reported, and the others still rotate
        failed++;
        log.error({ err, conversation: c.id }, 'conversation key opens with no configured master key');
        continue;
      }
      if (next && (await store.replaceWrappedKey(c.id, c.wrappedKey, next))) rewrapped++;
    }
    if (page.length < PAGE) break;
    after = page[page.length - 1]!.id;
  }
  log.info({ checked, rewrapped, failed }, 'conversation keys re-wrapped with the current master key');
  return { checked, rewrapped, failed };
}
