import { expect } from 'chai';
import {
  applyAck, classifyRid, createSession, isInactive, negotiate, newSid, overactivity, recordResponse,
  reportFor, settle, track, type Negotiated, type SessionState,
} from '../../../server/transports/bosh/session.js';

const T0 = 1_700_000_000_000;
function session(over: Partial<Negotiated> = {}): SessionState {
  const n = { ...(negotiate({ ver: '1.6', wait: '60', hold: '1' }) as Negotiated), ...over };
  return createSession('sid', 100, n, T0);
}

describe('BOSH session rules', function () {
  describe('negotiation', function () {
    it("clamps wait='60' to 25 s (Heroku) and answers requests = hold + 1", function () {
      const n = negotiate({ wait: '60', hold: '1', ver: '1.6' }) as Negotiated;
      expect(n).to.include({ wait: 25, hold: 1, requests: 2, ver: '1.6', acks: false });
    });
    it('keeps a shorter wait, caps hold at 2, notes acks, treats a missing ver as legacy', function () {
      const n = negotiate({ wait: '5', hold: '9', ack: '1' }) as Negotiated;
      expect(n).to.include({ wait: 5, hold: 2, requests: 3, ver: null, acks: true });
    });
    it('refuses a non-numeric wait or hold', function () {
      expect(negotiate({ wait: 'soon' })).to.deep.equal({ error: 'bad-request' });
      expect(negotiate({ hold: '-1' })).to.deep.equal({ error: 'bad-request' });
    });
    it('makes unpredictable sids', function () {
      const a = newSid();
      expect(a).to.match(/^[A-Za-z0-9_-]{22}$/);
      expect(newSid()).to.not.equal(a);
    });
  });

  describe('rid window', function () {
    it('classifies next, early (within requests), beyond and stale rids', function () {
      const s = session(); // lastRid 100, requests 2
      expect(classifyRid(s, 101).kind).to.equal('next');
      expect(classifyRid(s, 102).kind).to.equal('early');
      expect(classifyRid(s, 103).kind).to.equal('invalid');
      expect(classifyRid(s, 99).kind).to.equal('invalid');
      expect(classifyRid(s, 100_000).kind).to.equal('invalid');
    });
    it('replays a buffered response byte for byte and re-holds a retried held rid', function () {
      const s = session();
      s.lastRid = 102;
      recordResponse(s, 101, '<body a="1"/>', T0);
      s.held.push({ rid: 102, node: 'n1', at: T0 });
      expect(classifyRid(s, 101)).to.deep.equal({ kind: 'replay', body: '<body a="1"/>' });
      expect(classifyRid(s, 102).kind).to.equal('retry');
    });
    it('keeps the last `requests` responses and drops older acknowledged ones', function () {
      const s = session();
      for (let rid = 101; rid <= 106; rid++) {
        s.lastRid = rid;
        applyAck(s, rid, null);
        recordResponse(s, rid, `<b${rid}/>`, T0);
      }
      expect(s.buffer.map((b) => b.rid)).to.deep.equal([105, 106]);
      expect(classifyRid(s, 103).kind).to.equal('invalid');
    });
  });

  describe('acknowledgements', function () {
    it('a client without acks confirms every response below the rid it sends; the cursor follows', function () {
      const s = session();
      recordResponse(s, 101, '<x/>', T0, 1);
      recordResponse(s, 102, '<y/>', T0, 2);
      expect(applyAck(s, 102, null)).to.equal(1);
      expect(s.cursor).to.equal(1);
      expect(applyAck(s, 103, null)).to.equal(2);
    });
    it('a client with acks confirms only what its ack says, and hears report/time when behind', function () {
      const s = session({ acks: true });
      recordResponse(s, 101, '<x/>', T0, 1);
      recordResponse(s, 102, '<y/>', T0, 2);
      expect(applyAck(s, 104, 101)).to.equal(1);
      expect(s.buffer.map((b) => b.rid)).to.include(102);
      expect(reportFor(s, 101, T0 + 5000)).to.deep.equal({ report: 102, time: 5000 });
      expect(reportFor(s, 101, T0 + 10)).to.equal(null);
    });
  });

  describe('overactivity and polling', function () {
    it('ends a session that has more unanswered requests than `requests`', function () {
      const s = session(); // requests 2
      s.held.push({ rid: 101, node: 'a', at: T0 }, { rid: 102, node: 'a', at: T0 });
      expect(overactivity(s, { rid: 103, empty: false, pause: false, terminate: false }, T0 + 5000)).to.equal('policy-violation');
      expect(overactivity(s, { rid: 103, empty: false, pause: false, terminate: true }, T0 + 5000)).to.equal(null);
    });
    it('ends a session whose empty request fills every slot too soon after the last', function () {
      const s = session();
      s.held.push({ rid: 101, node: 'a', at: T0 });
      s.lastRequestAt = T0;
      expect(overactivity(s, { rid: 102, empty: true, pause: false, terminate: false }, T0 + 100)).to.equal('policy-violation');
      expect(overactivity(s, { rid: 102, empty: false, pause: false, terminate: false }, T0 + 100)).to.equal(null);
      expect(overactivity(s, { rid: 102, empty: true, pause: false, terminate: false }, T0 + 3000)).to.equal(null);
    });
    it('polling session (hold 0): two empty polls within `polling` seconds is a violation', function () {
      const s = createSession('p', 1, negotiate({ ver: '1.6', hold: '0', wait: '0' }) as Negotiated, T0);
      s.lastExchangeEmpty = true;
      s.lastResponseAt = T0;
      expect(overactivity(s, { rid: 2, empty: true, pause: false, terminate: false }, T0 + 500)).to.equal('policy-violation');
      expect(overactivity(s, { rid: 2, empty: true, pause: false, terminate: false }, T0 + 2500)).to.equal(null);
    });
  });

  describe('inactivity', function () {
    it('expires after `inactivity` with nothing held, or after the pause asked for', function () {
      const s = session();
      expect(isInactive(s, T0 + 59_000)).to.equal(false);
      expect(isInactive(s, T0 + 61_000)).to.equal(true);
      s.pause = 120;
      expect(isInactive(s, T0 + 61_000)).to.equal(false);
      s.pause = null;
      s.held.push({ rid: 101, node: 'a', at: T0 });
      expect(isInactive(s, T0 + 61_000)).to.equal(false);
    });
  });

  describe('receipts bookkeeping', function () {
    it('delivered settles receipt requests up to the seq; read settles the newest markable one', function () {
      const s = session();
      track(s, { conversation: 'c', seq: 1, id: 'm1', receipt: true, markable: true });
      track(s, { conversation: 'c', seq: 2, id: 'm2', receipt: true, markable: true });
      track(s, { conversation: 'c', seq: 3, id: 'm3', receipt: true, markable: false });
      expect(settle(s, 'c', 'delivered', 2)).to.deep.equal({ received: ['m1', 'm2'], displayed: null });
      expect(settle(s, 'c', 'delivered', 2)).to.deep.equal({ received: [], displayed: null });
      expect(settle(s, 'c', 'read', 3)).to.deep.equal({ received: ['m3'], displayed: 'm2' });
      expect(s.tracked).to.have.length(0);
    });
  });
});
