import { expect } from 'chai';
import type { MemberPosition } from '../../server/store/store.js';
import { byName, statusOf } from '../../server/core/views.js';

/** How a sender's message status is worked out from the other members' positions (no services). */
describe('message status from member positions', () => {
  const member = (name: string, p: Partial<MemberPosition> = {}): MemberPosition => ({
    conversationId: 'g1',
    userId: name.length,
    name,
    deliveredSeq: 0,
    readSeq: 0,
    role: 'member',
    fromSeq: 0,
    accepted: true,
    ...p,
  });

  it('is the least advanced member: sent, delivered to all, read by all', () => {
    const a = member('ann', { deliveredSeq: 5, readSeq: 5 });
    const b = member('bobby', { deliveredSeq: 5, readSeq: 3 });
    expect(statusOf(5, [a, b], 'group')).to.deep.equal({ status: 'delivered', delivered_to: ['ann', 'bobby'], read_by: ['ann'] });
    expect(statusOf(3, [a, b], 'group')).to.deep.equal({ status: 'read', delivered_to: ['ann', 'bobby'], read_by: ['ann', 'bobby'] });
    expect(statusOf(6, [a, b], 'group')).to.deep.equal({ status: 'sent', delivered_to: [], read_by: [] });
    expect(statusOf(5, [b], 'direct')).to.deep.equal({ status: 'delivered' }); // no lists in direct chats
  });

  it('leaves out members who joined after the message, and shows no read from one who has not consented', () => {
    const early = member('ann', { deliveredSeq: 9, readSeq: 9 });
    const late = member('carl', { fromSeq: 7, deliveredSeq: 7, readSeq: 7 });
    expect(statusOf(4, [early, late], 'group')).to.include({ status: 'read' });
    expect(statusOf(4, [early, late], 'group').read_by).to.deep.equal(['ann']);
    const stranger = member('vic', { deliveredSeq: 4, readSeq: 4, accepted: false });
    expect(statusOf(4, [stranger], 'direct')).to.deep.equal({ status: 'delivered' });
  });

  it('orders member names bytewise, the same as the database lists them (COLLATE "C")', () => {
    expect(byName(['b.c', 'b_c', 'b-c', 'bc', 'a9', 'a10'])).to.deep.equal(['a10', 'a9', 'b-c', 'b.c', 'b_c', 'bc']);
  });
});
