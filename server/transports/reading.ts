import type { Principal } from '../core/accounts.js';
import { decodeCursor, encodeCursor, type Batch, type Streams } from '../core/streams.js';
import type { ParkingLot } from './parking.js';

/**
 * A user's events after a position, as long-poll and BOSH answer them: nothing when this node
 * knows the stream ends there, from the events their wake-ups carried when those cover everything
 * up to the known head, else from the database.
 * A database read made while the user's channel is live here also refreshes the known head.
 */
export async function readFrom(streams: Streams, lot: ParkingLot, user: Principal, after: number, head?: number): Promise<Batch> {
  const trusted = lot.knownHead(user.id);
  const known = Math.max(head ?? 0, trusted ?? 0);
  // Known up to date (BOSH looks at the stream on every request): nothing to read.
  if (trusted !== null && known <= after) return streams.empty(after);
  if (known > after) {
    const events = lot.cached(user.id, after, known);
    if (events) {
      lot.onRead('wakeup');
      return { cursor: encodeCursor(known), events };
    }
  }
  lot.onRead('database');
  const live = lot.isLive(user.id);
  const batch = await streams.read(user, after);
  if (live && !batch.limited) lot.verified(user.id, decodeCursor(batch.cursor) ?? after, 0);
  return batch;
}
