import { performance } from 'node:perf_hooks';
import { isRetryable, type JsonResponse, type NodeClient } from './client.js';
import { runPool } from './pool.js';
import { sleep } from './sleep.js';
import { Tally, type Sent } from './tally.js';

/**
 * The benchmark's users: registration, direct conversations across nodes, a long-poll loop per
 * user, closed-loop senders, and the bookkeeping that turns all of it into figures (what was sent,
 * received, lost, duplicated, and when the senders saw their receipts).
 *
 * User i sends and polls on node i % 2; conversations pair user 2k (node a) with 2k+1 (node b),
 * so every message is posted on one node and delivered by the other.
 */

/** One benchmark user. */
export type User = {
  i: number;
  name: string;
  token: string;
  node: number;
  partner: number;
  conversation: string;
  cursor: string | undefined;
  /** A poll is outstanding right now. */
  parked: boolean;
  /** performance.now() when the outstanding poll was sent. */
  pollSentAt: number;
};

/** Tuning of the workload. */
export type WorkloadOptions = {
  users: number;
  /** Poll hold, seconds. */
  wait: number;
  /** Message text length, characters. */
  textBytes: number;
  /** Timeout of an ordinary request, ms. */
  requestTimeoutMs: number;
  /** Distinguishes this run's client_ids from any other's. */
  runTag: string;
  password: string;
  log: (msg: string) => void;
  /**
   * Who talks to whom. `pairs` (default): user 2k with 2k+1 only, conversations opened before the
   * load. `partners`: each user with about `partners` fixed others (most on the other node),
   * opened before the load. `anyone`: any sender to any recipient (on the other node with
   * probability 0.9); a pair's first message opens its conversation, as a new user's would.
   */
  mode?: 'pairs' | 'partners' | 'anyone';
  partners?: number;
};

/** Counters of things that should not happen, keyed by what happened ("send 500 internal", "poll ECONNRESET"). */
export type Problems = Record<string, number>;

/** Describe an unexpected answer in a line: "409 name_taken: …". */
export function describe(res: JsonResponse): string {
  const e = res.body?.error;
  return e ? `${res.status} ${e.code}: ${e.message}` : `${res.status} ${JSON.stringify(res.body).slice(0, 200)}`;
}

/** The whole workload against a set of nodes. */
export class Workload {
  readonly users: User[] = [];
  /** What was sent and what became of it. */
  readonly tally = new Tally();
  readonly problems: Problems = {};
  polls = 0;
  /** Polls answered with no event (their wait ran out): the idle cost, apart from delivery's. */
  emptyPolls = 0;
  sendRetries = 0;
  private stopPolls = false;
  private pollLoops: Promise<void>[] = [];
  private counter = 0;
  private readonly filler: string;
  /** Conversation of each unordered pair "i j" (i < j), opening or open (partners and anyone modes). */
  private readonly convs = new Map<string, Promise<string>>();
  /** partners mode: each user's partners. */
  private partnersOf: number[][] = [];
  /** Direct conversations opened (partners and anyone modes). */
  opened = 0;

  constructor(
    readonly clients: NodeClient[],
    readonly opts: WorkloadOptions,
  ) {
    if (opts.users < 2 || opts.users % 2 !== 0) throw new Error('--users must be an even number ≥ 2');
    this.filler = 'x'.repeat(Math.max(0, opts.textBytes));
  }

  private problem(what: string): void {
    this.problems[what] = (this.problems[what] ?? 0) + 1;
  }

  private nameOf(i: number): string {
    return `u${i}`;
  }

  /** Register every user (on its own node), `concurrency` at a time. */
  async register(concurrency: number): Promise<void> {
    const idx = Array.from({ length: this.opts.users }, (_, i) => i);
    let done = 0;
    await runPool(idx, concurrency, async (i) => {
      const name = this.nameOf(i);
      const node = i % 2;
      const client = this.clients[node]!;
      const creds = { name, password: this.opts.password };
      let res = await client.request('/api/register', { body: creds, timeoutMs: 60_000 });
      if (res.status === 409) res = await client.request('/api/login', { body: creds, timeoutMs: 60_000 });
      if ((res.status !== 201 && res.status !== 200) || typeof res.body?.token !== 'string') {
        throw new Error(`register ${name} on node ${node}: ${describe(res)}`);
      }
      this.users[i] = { i, name, token: res.body.token, node, partner: i ^ 1, conversation: '', cursor: undefined, parked: false, pollSentAt: 0 };
      if (++done % 200 === 0) this.opts.log(`registered ${done}/${this.opts.users}`);
    });
  }

  /** Take users registered by an earlier run (--reuse): names, tokens and conversations, in order. */
  adopt(users: Array<{ name: string; token: string; conversation: string }>): void {
    users.forEach((k, i) => {
      this.users[i] = { i, name: k.name, token: k.token, node: i % 2, partner: i ^ 1, conversation: k.conversation, cursor: undefined, parked: false, pollSentAt: 0 };
    });
  }

  /** Open the direct conversation of each pair (2k, 2k+1). */
  async pair(concurrency: number): Promise<void> {
    const pairs = Array.from({ length: this.opts.users / 2 }, (_, k) => 2 * k);
    await runPool(pairs, concurrency, async (a) => {
      const ua = this.users[a]!;
      const ub = this.users[a + 1]!;
      const res = await this.clients[ua.node]!.request('/api/conversations', { token: ua.token, body: { with: ub.name }, timeoutMs: 30_000 });
      const conv = res.body?.conversation;
      const id = typeof conv === 'string' ? conv : conv?.id;
      if ((res.status !== 201 && res.status !== 200) || typeof id !== 'string') {
        throw new Error(`open conversation ${ua.name}→${ub.name}: ${describe(res)}`);
      }
      ua.conversation = ub.conversation = id;
    });
  }

  /**
   * The conversation of a pair, opened by `from` on its node the first time (concurrent first
   * messages of a pair share one request); a failed open is forgotten so the next message retries.
   */
  conversationOf(from: number, to: number): Promise<string> {
    const key = from < to ? `${from} ${to}` : `${to} ${from}`;
    let p = this.convs.get(key);
    if (!p) {
      const ua = this.users[from]!;
      p = this.clients[ua.node]!.request('/api/conversations', { token: ua.token, body: { with: this.users[to]!.name }, timeoutMs: 30_000 }).then((res) => {
        const id = res.body?.conversation?.id;
        if ((res.status !== 201 && res.status !== 200) || typeof id !== 'string') throw new Error(`open ${describe(res).slice(0, 80)}`);
        this.opened++;
        return id as string;
      });
      p.catch(() => this.convs.delete(key));
      this.convs.set(key, p);
    }
    return p;
  }

  /**
   * partners mode: give each user about `n` fixed partners and open those conversations now. User
   * i pairs with i + d for the offsets d = 1, 3, 5, … (the other node) and every fifth offset even
   * (the same node), both ways, so each user has n partners and about 80% of them across nodes.
   */
  async openPartners(n: number, concurrency: number): Promise<void> {
    const count = this.users.length;
    const offsets = Array.from({ length: Math.max(1, Math.floor(n / 2)) }, (_, k) => (k % 5 === 4 ? 2 * k : 2 * k + 1));
    this.partnersOf = this.users.map(() => []);
    const pairs: Array<[number, number]> = [];
    for (let i = 0; i < count; i++) {
      for (const d of offsets) {
        const j = (i + d) % count;
        if (j === i || this.partnersOf[i]!.includes(j)) continue;
        this.partnersOf[i]!.push(j);
        this.partnersOf[j]!.push(i);
        pairs.push([i, j]);
      }
    }
    let done = 0;
    await runPool(pairs, concurrency, async ([i, j]) => {
      await this.conversationOf(i, j);
      if (++done % 2000 === 0) this.opts.log(`opened ${done}/${pairs.length} conversations`);
    });
  }

  /** Start the long-poll loops of the users `which` selects (all by default); they run until stopPolling. */
  startPolling(which: (u: User) => boolean = () => true): void {
    this.stopPolls = false;
    for (const u of this.users) if (which(u)) this.pollLoops.push(this.pollLoop(u));
  }

  /** How many polls are outstanding on each node, and the age (ms) of the youngest one. */
  parkedState(): { perNode: number[]; youngestMs: number } {
    const perNode = this.clients.map(() => 0);
    let youngest = Infinity;
    const now = performance.now();
    for (const u of this.users) {
      if (!u.parked) continue;
      perNode[u.node]!++;
      youngest = Math.min(youngest, now - u.pollSentAt);
    }
    return { perNode, youngestMs: youngest };
  }

  /**
   * Wait until every user has a poll outstanding that has not been answered for `quietMs`
   * (the start-up burst of presence and conversation events has settled), at most `timeoutMs`.
   */
  async settle(quietMs: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const { perNode, youngestMs } = this.parkedState();
      if (perNode.reduce((a, b) => a + b, 0) === this.pollLoops.length && youngestMs >= quietMs) return true;
      await sleep(50);
    }
    return false;
  }

  private async pollLoop(u: User): Promise<void> {
    const client = this.clients[u.node]!;
    const timeoutMs = (this.opts.wait + 10) * 1000;
    while (!this.stopPolls) {
      const path = u.cursor === undefined ? `/api/events?wait=${this.opts.wait}` : `/api/events?wait=${this.opts.wait}&since=${encodeURIComponent(u.cursor)}`;
      u.parked = true;
      u.pollSentAt = performance.now();
      let res: JsonResponse;
      try {
        this.polls++;
        res = await client.request(path, { token: u.token, timeoutMs });
      } catch (e) {
        u.parked = false;
        if (this.stopPolls) break;
        this.problem(`poll ${(e as { code?: string }).code ?? (e as Error).message}`);
        // 20 ms after a dropped keep-alive socket (retry at once is fine); 500 ms after anything else.
        await sleep(isRetryable(e) ? 20 : 500);
        continue;
      }
      u.parked = false;
      const now = performance.now();
      if (res.status === 200 && typeof res.body?.cursor === 'string' && Array.isArray(res.body.events)) {
        if (res.body.events.length === 0) this.emptyPolls++;
        this.tally.onEvents(u, res.body.events, now);
        u.cursor = res.body.cursor;
      } else if (res.status === 400 && res.body?.error?.code === 'bad_cursor') {
        this.problem('poll 400 bad_cursor');
        u.cursor = undefined;
      } else {
        this.problem(`poll ${describe(res).slice(0, 80)}`);
        // Half a second: a failing node must not be hammered by a thousand loops.
        await sleep(500);
      }
    }
    u.parked = false;
  }

  /**
   * Send until `until`. Closed loop by default: each of `senders` sends its next message when the
   * last one is answered. With `rate`, open loop: messages are due at `rate` per second in all and
   * taken by whichever sender is free (at most `senders` in flight); a message's latencies count
   * from when it was due, so a server that falls behind shows it (no coordinated omission).
   */
  async send(senders: number, until: number, measureFrom: number, maxMessages: number, rate?: number): Promise<void> {
    this.tally.measure(measureFrom, until);
    const pace = rate ? { start: performance.now(), every: 1000 / rate, next: 0 } : undefined;
    const loops = Array.from({ length: senders }, () => this.senderLoop(until, maxMessages, pace));
    await Promise.all(loops);
  }

  private async senderLoop(until: number, maxMessages: number, pace?: { start: number; every: number; next: number }): Promise<void> {
    const pairs = this.users.length / 2;
    while (performance.now() < until && this.counter < maxMessages) {
      let t0 = performance.now();
      if (pace) {
        const due = pace.start + pace.next++ * pace.every;
        if (due >= until) break;
        if (due > t0) await sleep(due - t0);
        t0 = due;
      }
      const { sender, recipient } = this.pick(pairs);
      const s = this.users[sender]!;
      let conversation = s.conversation;
      if (this.opts.mode === 'partners' || this.opts.mode === 'anyone') {
        try {
          conversation = await this.conversationOf(sender, recipient);
        } catch (e) {
          this.problem((e as Error).message);
          await sleep(20);
          continue;
        }
      }
      const id = `${this.opts.runTag}-${this.counter++}`;
      const rec: Sent = { t0, sender: s.i, recipient, conversation, measured: this.tally.inWindow(t0) };
      this.tally.sent.set(id, rec); // before the POST: the recipient may hear of it before we hear the 201
      const body = { text: `${id} ${this.filler}`, client_id: id };
      const path = `/api/conversations/${encodeURIComponent(conversation)}/messages`;
      let res: JsonResponse | undefined;
      // A retry reuses the client_id, so the server answers the first message again (never a duplicate).
      for (let attempt = 0; attempt < 3 && !res; attempt++) {
        try {
          res = await this.clients[s.node]!.request(path, { token: s.token, body, timeoutMs: this.opts.requestTimeoutMs });
        } catch (e) {
          if (!isRetryable(e)) {
            this.problem(`send ${(e as Error).message.slice(0, 80)}`);
            break;
          }
          this.sendRetries++;
        }
      }
      if (res && (res.status === 201 || res.status === 200) && typeof res.body?.message?.seq === 'number') {
        this.tally.acknowledged(rec, res.body.message.seq as number, performance.now());
      } else {
        if (res) this.problem(`send ${describe(res).slice(0, 80)}`);
        else this.problem('send gave up after 3 network errors');
        // 20 ms: a failing send must not become a hot loop.
        await sleep(20);
      }
    }
  }

  /** A sender and a recipient, as the mode says. */
  private pick(pairs: number): { sender: number; recipient: number } {
    const count = this.users.length;
    if (this.opts.mode === 'partners') {
      const sender = Math.floor(Math.random() * count);
      const list = this.partnersOf[sender]!;
      return { sender, recipient: list[Math.floor(Math.random() * list.length)]! };
    }
    if (this.opts.mode === 'anyone') {
      const sender = Math.floor(Math.random() * count);
      // user i lives on node i % 2: an odd distance is the other node
      const cross = count < 4 || Math.random() < 0.9;
      for (;;) {
        const recipient = Math.floor(Math.random() * count);
        if (recipient !== sender && ((recipient + sender) % 2 === 1) === cross) return { sender, recipient };
      }
    }
    const k = Math.floor(Math.random() * pairs);
    const sender = 2 * k + (Math.random() < 0.5 ? 0 : 1);
    return { sender, recipient: this.users[sender]!.partner };
  }

  /**
   * Wait until every acknowledged message has reached its recipient and been covered by a receipt
   * seen by its sender, at most `timeoutMs`. Returns the wait, ms.
   */
  async drain(timeoutMs: number): Promise<number> {
    const start = performance.now();
    const deadline = start + timeoutMs;
    while (performance.now() < deadline) {
      if (this.tally.outstanding() === 0) break;
      await sleep(50);
    }
    return performance.now() - start;
  }

  /** Stop every poll loop: no new polls; the caller closes the agents to end the outstanding ones. */
  async stopPolling(closeAgents: () => void): Promise<void> {
    this.stopPolls = true;
    closeAgents();
    await Promise.all(this.pollLoops);
  }
}
