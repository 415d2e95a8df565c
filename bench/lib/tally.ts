/**
 * The load benchmark's bookkeeping: every message the senders posted, and what became of it as
 * the recipients' polls and the senders' receipts tell (received, duplicated, misdelivered, covered
 * by a receipt), plus the events seen, overall and inside the measured window.
 */

/** A message the senders posted. */
export type Sent = {
  t0: number;
  sender: number;
  recipient: number;
  conversation: string;
  measured: boolean;
  ackAt?: number;
  seq?: number;
  receivedAt?: number;
  receiptAt?: number;
};

/** The message id carried at the start of each text (recipients do not see the sender's client_id). */
export function idFromText(text: unknown): string | undefined {
  if (typeof text !== 'string') return undefined;
  const sp = text.indexOf(' ');
  return sp > 0 ? text.slice(0, sp) : undefined;
}

/** What was sent, keyed by client_id, and what the users saw of it. */
export class Tally {
  readonly sent = new Map<string, Sent>();
  /** Events seen, by type ("message", "receipt", …), over every user. */
  readonly eventCounts: Record<string, number> = {};
  /** The same, for events received inside the measured window only. */
  readonly eventCountsMeasured: Record<string, number> = {};
  /** Receipts about other users' progress seen by senders, by status. */
  readonly receipts: Record<string, number> = { delivered: 0, read: 0 };
  duplicates = 0;
  misdelivered = 0;
  unknownMessages = 0;
  ownEchoes = 0;
  /** Per (conversation, sender): the highest receipt seen, and sent messages not yet covered by one. */
  private readonly receiptState = new Map<string, { upTo: number; pending: Sent[] }>();
  private measureFrom = Infinity;
  private measureTo = Infinity;

  /** The measured window, [from, to) in performance.now() ms. */
  measure(from: number, to: number): void {
    this.measureFrom = from;
    this.measureTo = to;
  }

  /** Whether a moment lies in the measured window. */
  inWindow(at: number): boolean {
    return at >= this.measureFrom && at < this.measureTo;
  }

  /** The server answered the send of `rec` with its sequence number. */
  acknowledged(rec: Sent, seq: number, at: number): void {
    rec.ackAt = at;
    rec.seq = seq;
    const st = this.receiptStateOf(rec.conversation, rec.sender);
    if (seq <= st.upTo) rec.receiptAt = at;
    else st.pending.push(rec);
  }

  /** Acknowledged messages not yet received, or not yet covered by a receipt their sender saw. */
  outstanding(): number {
    let n = 0;
    for (const r of this.sent.values()) if (r.ackAt !== undefined && (r.receivedAt === undefined || r.receiptAt === undefined)) n++;
    return n;
  }

  /** The events one poll of user `u` brought. */
  onEvents(u: { i: number; name: string }, events: any[], now: number): void {
    for (const ev of events) {
      const type = String(ev?.type);
      this.eventCounts[type] = (this.eventCounts[type] ?? 0) + 1;
      if (this.inWindow(now)) this.eventCountsMeasured[type] = (this.eventCountsMeasured[type] ?? 0) + 1;
      if (type === 'message') this.onMessage(u, ev.message, now);
      else if (type === 'receipt') this.onReceipt(u, ev, now);
    }
  }

  private onMessage(u: { i: number; name: string }, m: any, now: number): void {
    if (m?.from === u.name) {
      this.ownEchoes++;
      return;
    }
    const id = idFromText(m?.text);
    const rec = id === undefined ? undefined : this.sent.get(id);
    if (!rec) {
      this.unknownMessages++;
      return;
    }
    if (rec.receivedAt !== undefined) {
      this.duplicates++;
      return;
    }
    if (rec.recipient !== u.i) this.misdelivered++;
    rec.receivedAt = now;
  }

  private onReceipt(u: { i: number; name: string }, ev: any, now: number): void {
    if (ev.user === u.name) return; // my own progress, echoed to my other devices
    const status = String(ev.status);
    this.receipts[status] = (this.receipts[status] ?? 0) + 1;
    const upTo = Number(ev.up_to);
    if (!Number.isFinite(upTo)) return;
    const st = this.receiptStateOf(String(ev.conversation), u.i);
    if (upTo > st.upTo) st.upTo = upTo;
    st.pending = st.pending.filter((r) => {
      if (r.seq! <= upTo) {
        r.receiptAt = now;
        return false;
      }
      return true;
    });
  }

  private receiptStateOf(conversation: string, sender: number) {
    const key = `${conversation}\u0000${sender}`;
    let st = this.receiptState.get(key);
    if (!st) this.receiptState.set(key, (st = { upTo: -Infinity, pending: [] }));
    return st;
  }
}
