import type { Principal } from '../core/accounts.js';
import { errors } from '../core/errors.js';
import { decodeCursor, type Batch, type Streams } from '../core/streams.js';
import type { ParkingLot } from './parking.js';
import { readFrom } from './reading.js';

/** Default hold of a poll, seconds. */
export const WAIT_DEFAULT_S = 20;
/** Longest hold, seconds: Heroku's router drops a request that sent no byte within 30 s. */
export const WAIT_MAX_S = 25;

/** Parse `wait`: default 20, clamped to 0..25; 400 when not a number. */
export function parseWait(raw: unknown): number {
  if (raw === undefined || raw === null || raw === '') return WAIT_DEFAULT_S;
  const n = Number(raw);
  if (typeof raw !== 'string' && typeof raw !== 'number') throw errors.badRequest('wait must be a number of seconds', 'bad_wait');
  if (!Number.isFinite(n) || n < 0) throw errors.badRequest('wait must be a number of seconds', 'bad_wait');
  return Math.min(n, WAIT_MAX_S);
}

/**
 * One long-poll: acknowledge `since`, then answer the events after it, holding the request until
 * some arrive or `wait` runs out. Enter the lot before reading so no wake-up slips between.
 * `acknowledge: false` (a bot reading its owner's stream) reads without acknowledging: what a bot
 * reads is not delivered to its owner.
 */
export async function poll(
  streams: Streams,
  lot: ParkingLot,
  user: Principal,
  since: unknown,
  waitSeconds: number,
  signal?: AbortSignal,
  acknowledge = true,
): Promise<Batch> {
  const waitMs = lot.isClosing ? 0 : waitSeconds * 1000;
  if (waitMs <= 0) return streams.read(user, (await streams.begin(user, since, acknowledge)).after);
  const deadline = Date.now() + waitMs;
  // Enter before looking at the stream: a wake-up for anything committed after the look arrives.
  await lot.enter(user.id);
  try {
    const { after, head } = await start(streams, lot, user, since, acknowledge);
    let mustRead = head > after; // up to date: park at once, no read
    for (;;) {
      if (mustRead) {
        const headBefore = lot.head(user.id);
        const batch = await readFrom(streams, lot, user, after, Math.max(head, headBefore));
        // Entries that render to nothing (a conversation since deleted) still move the cursor on.
        if (batch.events.length > 0 || (decodeCursor(batch.cursor) ?? after) > after) return batch;
        if (lot.head(user.id) > headBefore && lot.head(user.id) > after) continue; // a wake-up raced the read
      }
      mustRead = true;
      const outcome = await lot.wait(user.id, after, deadline - Date.now(), signal, user.device);
      if (outcome.kind === 'ephemeral') return { cursor: streams.empty(after).cursor, events: [outcome.event] };
      if (outcome.kind !== 'wake') return streams.empty(after);
    }
  } finally {
    lot.leave(user.id);
  }
}

/**
 * Where a poll starts and where the stream ends. When this node knows the user's head (their
 * channel live here and the head read recently, see ParkingLot.knownHead) and `since` is within
 * it, no database read is needed: only a new acknowledgement is written (group commit). Otherwise
 * one statement reads both and is remembered.
 */
async function start(
  streams: Streams,
  lot: ParkingLot,
  user: Principal,
  since: unknown,
  acknowledge: boolean,
): Promise<{ after: number; head: number }> {
  const seq = typeof since === 'string' ? decodeCursor(since) : null;
  const known = seq === null ? null : lot.knownHead(user.id);
  if (seq !== null && known !== null && seq <= known) {
    if (acknowledge && seq > lot.acked(user.id)) {
      await streams.acknowledge(user, seq);
      lot.markAcked(user.id, seq);
    }
    return { after: seq, head: known };
  }
  const pos = await streams.begin(user, since, acknowledge);
  // A read that acknowledged nothing must not tell the lot it did
  lot.verified(user.id, pos.head, acknowledge ? pos.after : 0);
  return pos;
}
