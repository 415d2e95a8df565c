import { expect } from 'chai';
import type { Bus } from '../../server/bus/bus.js';
import { sleep } from '../support/sleep.js';

/** What a bus implementation gives the contract suite: nodes that share a backend, and a stranger. */
export interface BusFixture {
  /** A new bus on the shared backend: another node. Each is closed by the suite. */
  node(): Promise<Bus>;
  /** A new bus that shares nothing with the nodes (another Redis prefix, another hub). */
  stranger(): Promise<Bus>;
  /** How many subscriptions the backend holds for a channel of the nodes (Redis: PUBSUB NUMSUB). */
  subscriptions(channel: string): Promise<number>;
  /** Remove whatever the run left behind (keys); called after every bus is closed. */
  end(): Promise<void>;
}

/** Collects payloads, and lets a test wait for the next ones without a fixed sleep. */
class Inbox {
  readonly got: string[] = [];
  private waiters: Array<() => void> = [];
  readonly handler = (payload: string): void => {
    this.got.push(payload);
    for (const w of this.waiters.splice(0)) w();
  };
  /** Resolve once n payloads arrived; fail after 2 s (a lost message, not a slow one). */
  async until(n: number): Promise<string[]> {
    const deadline = Date.now() + 2000;
    while (this.got.length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} payloads, got ${this.got.length}: ${JSON.stringify(this.got)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.got;
  }
}

let seq = 0;
const fresh = (what: string) => `${what}-${process.pid}-${++seq}`;

/**
 * The contract every Bus implementation keeps. `make` gives a fixture per test; the suite closes
 * every bus it opened and then calls fixture.end().
 *
 * "Nothing was delivered" is shown without sleeping: after the publish under test, the same bus
 * publishes on a barrier channel the same subscriber listens to; publishes of one connection
 * reach one subscriber connection in order, so once the barrier arrives, the other would have too.
 */
export function busContract(name: string, make: () => Promise<BusFixture>): void {
  describe(`Bus contract: ${name}`, function () {
    let fx: BusFixture;
    let opened: Bus[];
    const node = async () => {
      const b = await fx.node();
      opened.push(b);
      return b;
    };
    const stranger = async () => {
      const b = await fx.stranger();
      opened.push(b);
      return b;
    };
    /** Publish on a barrier channel through `via` and wait until `on` delivers it. */
    const barrier = async (via: Bus, on: Bus) => {
      const ch = fresh('barrier');
      const inbox = new Inbox();
      await on.subscribe(ch, inbox.handler);
      await via.publish(ch, 'barrier');
      await inbox.until(1);
      await on.unsubscribe(ch, inbox.handler);
    };

    beforeEach(async function () {
      fx = await make();
      opened = [];
    });
    afterEach(async function () {
      await Promise.all(opened.map((b) => b.close()));
      await fx.end();
    });

    describe('pub/sub', function () {
      it('a subscriber gets what is published after its subscribe resolved, payload intact', async function () {
        const bus = await node();
        const ch = fresh('user');
        const inbox = new Inbox();
        await bus.subscribe(ch, inbox.handler);
        const payload = JSON.stringify({ news: 42, text: 'héllo ✓ "quoted"' });
        await bus.publish(ch, payload);
        await bus.publish(ch, '');
        expect(await inbox.until(2)).to.deep.equal([payload, '']);
      });

      it('never calls a handler synchronously inside publish', async function () {
        const bus = await node();
        const ch = fresh('user');
        const inbox = new Inbox();
        await bus.subscribe(ch, inbox.handler);
        const p = bus.publish(ch, 'x');
        expect(inbox.got).to.deep.equal([]);
        await p;
        await inbox.until(1);
      });

      it('two handlers on one channel both get each publish', async function () {
        const bus = await node();
        const ch = fresh('user');
        const a = new Inbox();
        const b = new Inbox();
        await bus.subscribe(ch, a.handler);
        await bus.subscribe(ch, b.handler);
        await bus.publish(ch, 'one');
        expect(await a.until(1)).to.deep.equal(['one']);
        expect(await b.until(1)).to.deep.equal(['one']);
      });

      it('unsubscribing one handler keeps the other, and the channel stays subscribed', async function () {
        const bus = await node();
        const ch = fresh('user');
        const a = new Inbox();
        const b = new Inbox();
        await bus.subscribe(ch, a.handler);
        await bus.subscribe(ch, b.handler);
        expect(await fx.subscriptions(ch)).to.equal(1, 'one subscription per channel per node, however many handlers');
        await bus.unsubscribe(ch, a.handler);
        expect(await fx.subscriptions(ch)).to.equal(1);
        await bus.publish(ch, 'after');
        await barrier(bus, bus);
        expect(await b.until(1)).to.deep.equal(['after']);
        expect(a.got).to.deep.equal([]);
      });

      it('after the last handler goes, nothing is delivered and the channel is dropped', async function () {
        const bus = await node();
        const ch = fresh('user');
        const a = new Inbox();
        const b = new Inbox();
        await bus.subscribe(ch, a.handler);
        await bus.subscribe(ch, b.handler);
        await bus.unsubscribe(ch, a.handler);
        await bus.unsubscribe(ch, b.handler);
        expect(await fx.subscriptions(ch)).to.equal(0);
        await bus.publish(ch, 'nobody');
        await barrier(bus, bus);
        expect(a.got).to.deep.equal([]);
        expect(b.got).to.deep.equal([]);
      });

      it('one handler subscribed twice is called twice and needs two unsubscribes', async function () {
        const bus = await node();
        const ch = fresh('user');
        const a = new Inbox();
        await bus.subscribe(ch, a.handler);
        await bus.subscribe(ch, a.handler);
        await bus.publish(ch, 'x');
        expect(await a.until(2)).to.deep.equal(['x', 'x']);
        await bus.unsubscribe(ch, a.handler);
        await bus.publish(ch, 'y');
        expect(await a.until(3)).to.deep.equal(['x', 'x', 'y']);
        await bus.unsubscribe(ch, a.handler);
        expect(await fx.subscriptions(ch)).to.equal(0);
      });

      it('unsubscribing a handler that is not there changes nothing', async function () {
        const bus = await node();
        const ch = fresh('user');
        const a = new Inbox();
        await bus.unsubscribe(ch, a.handler);
        await bus.subscribe(ch, a.handler);
        await bus.unsubscribe(ch, () => {});
        await bus.publish(ch, 'still');
        expect(await a.until(1)).to.deep.equal(['still']);
      });

      it('a subscribe racing an unsubscribe of the same channel ends with the handlers present', async function () {
        const bus = await node();
        for (let round = 0; round < 20; round++) {
          const ch = fresh('race');
          const a = new Inbox();
          const b = new Inbox();
          await bus.subscribe(ch, a.handler);
          // Not awaited in between: the unsubscribe of the last handler and a new subscribe overlap.
          await Promise.all([bus.unsubscribe(ch, a.handler), bus.subscribe(ch, b.handler)]);
          expect(await fx.subscriptions(ch)).to.equal(1);
          await bus.publish(ch, 'b gets it');
          expect(await b.until(1)).to.deep.equal(['b gets it']);
          expect(a.got).to.deep.equal([]);

          // And the other way round: subscribe then unsubscribe at once leaves nothing.
          await Promise.all([bus.unsubscribe(ch, b.handler), bus.subscribe(ch, a.handler), bus.unsubscribe(ch, a.handler)]);
          expect(await fx.subscriptions(ch)).to.equal(0);
        }
      });

      it('a handler that throws does not keep the others from their payload', async function () {
        const bus = await node();
        const ch = fresh('user');
        const b = new Inbox();
        await bus.subscribe(ch, () => {
          throw new Error('handler bug (expected in this test)');
        });
        await bus.subscribe(ch, b.handler);
        await bus.publish(ch, 'p1');
        await bus.publish(ch, 'p2');
        expect(await b.until(2)).to.deep.equal(['p1', 'p2']);
      });

      it('publishMany delivers every item, in order per channel', async function () {
        const bus = await node();
        const ch1 = fresh('user');
        const ch2 = fresh('user');
        const a = new Inbox();
        const b = new Inbox();
        await bus.subscribe(ch1, a.handler);
        await bus.subscribe(ch2, b.handler);
        const items: Array<[string, string]> = [];
        for (let i = 0; i < 50; i++) items.push([i % 2 ? ch2 : ch1, `m${i}`]);
        await bus.publishMany(items);
        await bus.publishMany([]);
        expect(await a.until(25)).to.deep.equal(items.filter(([c]) => c === ch1).map(([, p]) => p));
        expect(await b.until(25)).to.deep.equal(items.filter(([c]) => c === ch2).map(([, p]) => p));
      });

      it('two nodes see each other\'s publishes; a stranger (other prefix) sees none', async function () {
        const n1 = await node();
        const n2 = await node();
        const other = await stranger();
        const ch = fresh('user');
        const on1 = new Inbox();
        const on2 = new Inbox();
        const onOther = new Inbox();
        await n1.subscribe(ch, on1.handler);
        await n2.subscribe(ch, on2.handler);
        await other.subscribe(ch, onOther.handler);
        await n1.publish(ch, 'from n1');
        await n2.publishMany([[ch, 'from n2']]);
        expect(await on1.until(2)).to.have.members(['from n1', 'from n2']);
        expect(await on2.until(2)).to.have.members(['from n1', 'from n2']);
        await barrier(other, other);
        expect(onOther.got).to.deep.equal([]);

        await other.publish(ch, 'from the stranger');
        await barrier(n1, n1);
        expect(on1.got).to.have.length(2);
      });

      it('closing one node leaves the other node\'s subscriptions working', async function () {
        const n1 = await node();
        const n2 = await node();
        const ch = fresh('user');
        const on1 = new Inbox();
        const on2 = new Inbox();
        await n1.subscribe(ch, on1.handler);
        await n2.subscribe(ch, on2.handler);
        await n1.close();
        await n2.publish(ch, 'after n1 left');
        expect(await on2.until(1)).to.deep.equal(['after n1 left']);
        await barrier(n2, n2);
        expect(on1.got).to.deep.equal([]);
      });
    });

    describe('presence', function () {
      it('heartbeat says "came online" once, then not, and again after the user was swept', async function () {
        const bus = await node();
        const alice = fresh('alice');
        expect(await bus.heartbeat(alice, 'node-a', 1000)).to.equal(true);
        expect(await bus.heartbeat(alice, 'node-a', 2000)).to.equal(false);
        expect(await bus.heartbeat(alice, 'node-b', 3000)).to.equal(false, 'moving to another node is not coming online');
        expect(await bus.sweepExpired(5000, 10)).to.deep.equal([{ userId: alice, lastMs: 3000 }]);
        expect(await bus.heartbeat(alice, 'node-a', 6000)).to.equal(true);
      });

      it('lastHeartbeats gives the time of online users and leaves out the others', async function () {
        const n1 = await node();
        const n2 = await node();
        const [alice, bob, carol] = [fresh('alice'), fresh('bob'), fresh('carol')];
        await n1.heartbeat(alice, 'n1', 1_764_288_000_123);
        await n2.heartbeat(bob, 'n2', 1_764_288_000_456);
        const got = await n1.lastHeartbeats([alice, bob, carol]);
        expect([...got.entries()].sort()).to.deep.equal([
          [alice, 1_764_288_000_123],
          [bob, 1_764_288_000_456],
        ]);
        expect((await n2.lastHeartbeats([])).size).to.equal(0);
      });

      it('an older heartbeat (another node\'s skewed clock) does not move the last time back', async function () {
        const bus = await node();
        const alice = fresh('alice');
        await bus.heartbeat(alice, 'n1', 5000);
        await bus.heartbeat(alice, 'n2', 4000);
        expect((await bus.lastHeartbeats([alice])).get(alice)).to.equal(5000);
      });

      it('sweepExpired takes only heartbeats strictly before the bound, oldest first, at most max', async function () {
        const bus = await node();
        const users = [fresh('u0'), fresh('u1'), fresh('u2'), fresh('u3')];
        await bus.heartbeat(users[0]!, 'n', 100);
        await bus.heartbeat(users[1]!, 'n', 300);
        await bus.heartbeat(users[2]!, 'n', 200);
        await bus.heartbeat(users[3]!, 'n', 400);
        expect(await bus.sweepExpired(400, 0)).to.deep.equal([]);
        expect(await bus.sweepExpired(400, 2)).to.deep.equal([
          { userId: users[0], lastMs: 100 },
          { userId: users[2], lastMs: 200 },
        ]);
        expect(await bus.sweepExpired(400, 10)).to.deep.equal([{ userId: users[1], lastMs: 300 }]);
        expect(await bus.sweepExpired(400, 10)).to.deep.equal([]);
        const left = await bus.lastHeartbeats(users);
        expect([...left.keys()]).to.deep.equal([users[3]]);
      });

      it('two nodes sweeping at once give each expired user to exactly one of them', async function () {
        this.timeout(30_000);
        const n1 = await node();
        const n2 = await node();
        for (let round = 0; round < 10; round++) {
          const users = Array.from({ length: 200 }, (_, i) => fresh(`r${round}-u${i}`));
          await Promise.all(users.map((u, i) => (i % 2 ? n1 : n2).heartbeat(u, 'n', 1000 + i)));
          // Many small concurrent sweeps from both nodes, so that claims truly interleave.
          const sweeps = Array.from({ length: 40 }, (_, i) => (i % 2 ? n1 : n2).sweepExpired(10_000, 7));
          const claimed = (await Promise.all(sweeps)).flat();
          const ids = claimed.map((c) => c.userId);
          expect(new Set(ids).size).to.equal(ids.length, 'no user is claimed twice');
          expect([...ids].sort()).to.deep.equal([...users].sort());
          for (const c of claimed) expect(c.lastMs).to.equal(1000 + users.indexOf(c.userId));
          expect((await n1.lastHeartbeats(users)).size).to.equal(0);
        }
      });

      it('a stranger (other prefix) shares no presence', async function () {
        const bus = await node();
        const other = await stranger();
        const alice = fresh('alice');
        await bus.heartbeat(alice, 'n', 1000);
        expect((await other.lastHeartbeats([alice])).size).to.equal(0);
        expect(await other.sweepExpired(10_000, 10)).to.deep.equal([]);
        expect(await other.heartbeat(alice, 'n', 1000)).to.equal(true);
      });
    });

    describe('key-value', function () {
      it('set then get from another node; del removes; a stranger does not see it', async function () {
        const n1 = await node();
        const n2 = await node();
        const other = await stranger();
        const k = fresh('bosh-sid');
        await n1.set(k, '{"rid":17}', 60_000);
        expect(await n2.get(k)).to.equal('{"rid":17}');
        expect(await other.get(k)).to.equal(null);
        await n1.set(k, 'replaced', 60_000);
        expect(await n2.get(k)).to.equal('replaced');
        await n2.del(k);
        expect(await n1.get(k)).to.equal(null);
        await n1.del(k);
      });

      it('a key is gone once its time to live has passed', async function () {
        const bus = await node();
        const k = fresh('k');
        await bus.set(k, 'v', 100);
        expect(await bus.get(k)).to.equal('v');
        await sleep(250);
        expect(await bus.get(k)).to.equal(null);
      });

      it('setIfAbsent succeeds once, and again only after expiry or del', async function () {
        const n1 = await node();
        const n2 = await node();
        const k = fresh('lock');
        const results = await Promise.all([n1.setIfAbsent(k, 'a', 150), n2.setIfAbsent(k, 'b', 150), n1.setIfAbsent(k, 'c', 150)]);
        expect(results.filter(Boolean)).to.have.length(1);
        expect(await n1.get(k)).to.equal(['a', 'b', 'c'][results.indexOf(true)]);
        await sleep(300);
        expect(await n2.setIfAbsent(k, 'd', 60_000)).to.equal(true);
        expect(await n2.setIfAbsent(k, 'e', 60_000)).to.equal(false);
        await n1.del(k);
        expect(await n1.setIfAbsent(k, 'f', 60_000)).to.equal(true);
        expect(await n2.get(k)).to.equal('f');
      });

      it('lockAndGet locks once across nodes and reads the key with the lock; unlockWith writes and frees only while it holds the lock', async function () {
        const n1 = await node();
        const n2 = await node();
        // The same last segment: one hash slot on a Redis Cluster (see Bus.lockAndGet)
        const session = fresh('session');
        const lock = `lock:${session}`;
        const k = `state:${session}`;
        await n1.set(k, 'v1', 60_000);
        const tries = await Promise.all([n1.lockAndGet(lock, 't1', 60_000, k), n2.lockAndGet(lock, 't2', 60_000, k)]);
        expect(tries.map((t) => t.locked).sort()).to.deep.equal([false, true]);
        const winner = tries[0]!.locked ? { bus: n1, token: 't1' } : { bus: n2, token: 't2' };
        expect(tries.find((t) => t.locked)!.value).to.equal('v1');
        expect(tries.find((t) => !t.locked)!.value).to.equal(null); // no read without the lock
        // A writer whose lock is gone (expired, taken by another) must not overwrite the state.
        expect(await winner.bus.unlockWith(lock, 'not-mine', { key: k, value: 'v2', ttlMs: 60_000 })).to.equal(false);
        expect(await n1.get(k)).to.equal('v1');
        expect(await n1.get(lock)).to.equal(winner.token); // ...and another's lock stays
        expect(await winner.bus.unlockWith(lock, winner.token, { key: k, value: null, ttlMs: 0 })).to.equal(true);
        expect(await n2.get(k)).to.equal(null); // value null deletes
        expect(await n2.get(lock)).to.equal(null);
        const absent = await n2.lockAndGet(lock, 't3', 150, k);
        expect(absent).to.deep.equal({ locked: true, value: null });
        await sleep(300); // an expired lock can be taken again
        expect(await n2.unlockWith(lock, 't3', { key: k, value: 'late', ttlMs: 60_000 })).to.equal(false, 'a step past its lock time writes nothing');
        expect(await n1.get(k)).to.equal(null);
        expect((await n1.lockAndGet(lock, 't4', 60_000, k)).locked).to.equal(true);
        await n1.unlockWith(lock, 't4', null);
        expect(await n1.get(lock)).to.equal(null);
      });

      // Found by npm run chaos (BOSH messages lost around a Redis restart): a locked section that
      // outlived its lock (or a save the Redis client sent again after reconnecting) wrote its
      // older state over the newer state of whoever took the lock next.
      it('extendLock keeps a lock only for its holder', async function () {
        const n1 = await node();
        const n2 = await node();
        const session = fresh('session');
        const lock = `lock:${session}`;
        expect((await n1.lockAndGet(lock, 'mine', 150, `state:${session}`)).locked).to.equal(true);
        expect(await n2.extendLock(lock, 'theirs', 60_000)).to.equal(false);
        expect(await n1.extendLock(lock, 'mine', 60_000)).to.equal(true);
        await sleep(300); // past the first 150 ms: the renewal holds it
        expect((await n2.lockAndGet(lock, 'theirs', 60_000, `state:${session}`)).locked).to.equal(false);
        expect(await n1.unlockWith(lock, 'mine', null)).to.equal(true);
        expect(await n1.extendLock(lock, 'mine', 60_000)).to.equal(false); // gone
      });

      it('a write whose lock expired and was taken by another is not applied', async function () {
        const n1 = await node();
        const n2 = await node();
        // The same last segment: one hash slot on a Redis Cluster (see Bus.lockAndGet)
        const session = fresh('session');
        const lock = `lock:${session}`;
        const k = `state:${session}`;
        await n1.set(k, 'old', 60_000);
        expect((await n1.lockAndGet(lock, 'slow', 150, k)).locked).to.equal(true);
        await sleep(300); // n1's section outlives its lock
        expect((await n2.lockAndGet(lock, 'next', 60_000, k)).locked).to.equal(true);
        expect(await n2.unlockWith(lock, 'next', { key: k, value: 'newer', ttlMs: 60_000 })).to.equal(true);
        expect(await n1.unlockWith(lock, 'slow', { key: k, value: 'stale', ttlMs: 60_000 })).to.equal(false);
        expect(await n2.get(k)).to.equal('newer');
      });

      it('incr counts across nodes and expires ttl after the FIRST increment (a fixed window)', async function () {
        const n1 = await node();
        const n2 = await node();
        const k = fresh('rate');
        expect(await n1.incr(k, 400)).to.equal(1);
        expect(await n2.incr(k, 400)).to.equal(2);
        await sleep(250);
        // Later increments must not push the expiry back, or a steady client would never be let go.
        expect(await n1.incr(k, 400)).to.equal(3);
        await sleep(250);
        expect(await n1.incr(k, 400)).to.equal(1);
      });

      it('incr by a negative amount gives back what a reservation took', async function () {
        const bus = await node();
        const k = fresh('rate');
        expect(await bus.incr(k, 60_000, 3)).to.equal(3);
        expect(await bus.incr(k, 60_000, -1)).to.equal(2);
        await expectRejection(bus.incr(k, 60_000, 0.5));
      });

      it('rejects a non-positive or non-finite time to live', async function () {
        const bus = await node();
        const k = fresh('k');
        for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) {
          await expectRejection(bus.set(k, 'v', bad));
          await expectRejection(bus.setIfAbsent(k, 'v', bad));
          await expectRejection(bus.incr(k, bad));
        }
        expect(await bus.get(k)).to.equal(null);
      });

      it('incr of a value that is not a number rejects', async function () {
        const bus = await node();
        const k = fresh('k');
        await bus.set(k, 'not a number', 60_000);
        await expectRejection(bus.incr(k, 60_000));
        await bus.del(k);
      });
    });

    describe('lifecycle', function () {
      it('ping is true while open, false after close; close twice is fine; publish after close does not throw', async function () {
        const bus = await node();
        expect(await bus.ping()).to.equal(true);
        await bus.close();
        expect(await bus.ping()).to.equal(false);
        await bus.close();
        await bus.publish(fresh('user'), 'late');
        await bus.publishMany([[fresh('user'), 'late']]);
        await bus.unsubscribe(fresh('user'), () => {});
        await expectRejection(bus.get('k'));
      });
    });
  });
}

async function expectRejection(p: Promise<unknown>): Promise<void> {
  let failed = false;
  try {
    await p;
  } catch {
    failed = true;
  }
  expect(failed, 'expected a rejection').to.equal(true);
}
