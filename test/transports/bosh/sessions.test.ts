import { expect } from 'chai';
import { pino } from 'pino';
import { LocalBus, LocalHub } from '../../../server/bus/local.js';
import { createSession, negotiate, type Negotiated } from '../../../server/transports/bosh/session.js';
import { LockLost, SessionStore } from '../../../server/transports/bosh/sessions.js';

const log = pino({ level: 'silent' });

describe('BOSH shared session store', function () {
  it('serialises read-modify-write of one sid across two "nodes": none of 60 concurrent updates is lost', async () => {
    const hub = new LocalHub();
    const buses = [new LocalBus({ log, hub }), new LocalBus({ log, hub })];
    try {
      const stores = buses.map((b) => new SessionStore(b));
      const s = createSession('sid-1', 10, negotiate({ ver: '1.6' }) as Negotiated, Date.now());
      expect(await stores[0]!.create(s)).to.equal(true);
      expect(await stores[1]!.create(s)).to.equal(false); // a sid is created once
      const order: number[] = [];
      await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          stores[i % 2]!.update('sid-1', async (cur) => {
            const before = cur!.lastRid;
            await new Promise((r) => setTimeout(r, Math.random() * 2)); // a database call inside the section
            cur!.lastRid = before + 1;
            order.push(i);
            return { result: null, save: cur };
          }),
        ),
      );
      expect((await stores[1]!.get('sid-1'))!.lastRid).to.equal(70);
      expect(order).to.have.length(60);
    } finally {
      for (const b of buses) await b.close();
    }
  });

  // Found by npm run chaos (BOSH messages lost around a Redis restart): a section that outlived
  // its 3 s lock saved its older state over the newer one of the node that took the lock next,
  // and answered from it. Now it saves nothing and fails, so the client resends and runs afresh.
  it('a section that outlives its lock saves nothing and fails; the next holder\'s state stands', async function () {
    this.timeout(15_000);
    const hub = new LocalHub();
    const buses = [new LocalBus({ log, hub }), new LocalBus({ log, hub })];
    try {
      // The slow node cannot renew its lock meanwhile (it lost its connection to the bus)
      buses[0]!.extendLock = () => new Promise<boolean>(() => undefined);
      const [slow, next] = buses.map((b) => new SessionStore(b)) as [SessionStore, SessionStore];
      await slow.create(createSession('sid-slow', 10, negotiate({ ver: '1.6' }) as Negotiated, Date.now()));
      const late = slow.update('sid-slow', async (cur) => {
        await new Promise((r) => setTimeout(r, 3_500)); // past the lock's 3 s
        cur!.lastRid = 1000;
        return { result: 'answered from a stale state', save: cur };
      });
      const lateOutcome = late.then(() => 'saved', (err: unknown) => (err instanceof LockLost ? 'lock lost' : String(err)));
      await new Promise((r) => setTimeout(r, 100));
      await next.update('sid-slow', (cur) => {
        cur!.lastRid = 11;
        return { result: null, save: cur };
      });
      expect(await lateOutcome).to.equal('lock lost');
      expect((await next.get('sid-slow'))!.lastRid).to.equal(11);
    } finally {
      for (const b of buses) await b.close();
    }
  });

  it('drops a session on request and sees nothing afterwards', async () => {
    const bus = new LocalBus({ log });
    try {
      const store = new SessionStore(bus);
      await store.create(createSession('sid-2', 1, negotiate({ ver: '1.6' }) as Negotiated, Date.now()));
      await store.update('sid-2', () => ({ result: null, save: null, drop: true }));
      expect(await store.get('sid-2')).to.equal(null);
      const seen = await store.update('sid-2', (s) => ({ result: s, save: null }));
      expect(seen).to.equal(null);
    } finally {
      await bus.close();
    }
  });

  it('a failing section releases the lock: the next update runs', async () => {
    const bus = new LocalBus({ log });
    try {
      const store = new SessionStore(bus);
      await store.create(createSession('sid-3', 1, negotiate({ ver: '1.6' }) as Negotiated, Date.now()));
      await store.update('sid-3', () => {
        throw new Error('boom');
      }).catch(() => undefined);
      const t0 = Date.now();
      const ok = await store.update('sid-3', (s) => ({ result: s!.sid, save: null }));
      expect(ok).to.equal('sid-3');
      expect(Date.now() - t0).to.be.below(500); // not waiting for the lock to expire
    } finally {
      await bus.close();
    }
  });

  it('a step that runs past its lock time saves nothing, so it cannot overwrite what the next holder wrote (issue 11 item 6)', async () => {
    const hub = new LocalHub();
    const buses = [new LocalBus({ log, hub }), new LocalBus({ log, hub })];
    try {
      buses[0]!.extendLock = async () => false; // its renewal finds the lock gone (or another's)
      const [slow, fast] = buses.map((b) => new SessionStore(b, 100));
      await slow!.create(createSession('sid-4', 1, negotiate({ ver: '1.6' }) as Negotiated, Date.now()));
      const late = slow!.update('sid-4', async (s) => {
        await new Promise((r) => setTimeout(r, 250)); // e.g. 300 messages in one body
        s!.lastRid = 99;
        return { result: null, save: s };
      });
      await new Promise((r) => setTimeout(r, 150)); // the lock has expired: the other node takes it
      await fast!.update('sid-4', (s) => {
        s!.lastRid = 2;
        return { result: null, save: s };
      });
      let failure: unknown;
      await late.catch((err: unknown) => (failure = err));
      expect(failure).to.be.instanceOf(LockLost);
      expect((await fast!.get('sid-4'))!.lastRid).to.equal(2);
    } finally {
      for (const b of buses) await b.close();
    }
  });

  it('a step longer than the lock renews it and keeps the session: the next holder waits, then runs on its state', async () => {
    const hub = new LocalHub();
    const buses = [new LocalBus({ log, hub }), new LocalBus({ log, hub })];
    try {
      const [slow, next] = buses.map((b) => new SessionStore(b, 100));
      await slow!.create(createSession('sid-5', 1, negotiate({ ver: '1.6' }) as Negotiated, Date.now()));
      const late = slow!.update('sid-5', async (s) => {
        await new Promise((r) => setTimeout(r, 350)); // a SASL login waiting for its password hash
        s!.lastRid = 7;
        return { result: 'logged in', save: s };
      });
      await new Promise((r) => setTimeout(r, 150)); // past the 100 ms the lock lives without renewal
      const after = await next!.update('sid-5', (s) => {
        const seen = s!.lastRid;
        s!.lastRid = 8;
        return { result: seen, save: s };
      });
      expect(await late).to.equal('logged in');
      expect(after).to.equal(7); // it waited for the slow step and saw what it saved
      expect((await next!.get('sid-5'))!.lastRid).to.equal(8);
    } finally {
      for (const b of buses) await b.close();
    }
  });
});
