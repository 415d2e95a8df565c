import { expect } from 'chai';
import { parseStanza, renderEvent } from '../../../server/transports/bosh/stanzas.js';
import { CORRECTION_FEATURES } from '../../../server/transports/bosh/corrections.js';
import { createSession, negotiate, type Negotiated } from '../../../server/transports/bosh/session.js';
import { parseXml, serialize } from '../../../server/transports/bosh/xml.js';
import type { MessageView } from '../../../server/core/views.js';

const D = 'chat.example';
const parse = (xml: string) => parseStanza(parseXml(xml.replace('<message ', "<message xmlns='jabber:client' ")), D);

describe('XMPP corrections, retractions, replies and reactions: the stanza mapping', () => {
  it('parses a correction, a retraction, a reaction set and a reply; malformed ones are bad-request', () => {
    expect(parse(`<message to='bob@${D}' type='chat' id='c2'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='c1'/></message>`))
      .to.deep.equal({ kind: 'correct', to: { kind: 'user', name: 'bob' }, ref: 'c1', text: 'fixed' });
    expect(parse(`<message to='g1@groups.${D}' type='groupchat'><retract xmlns='urn:xmpp:message-retract:1' id='m1'/></message>`))
      .to.deep.equal({ kind: 'retract', to: { kind: 'group', conversation: 'g1' }, ref: 'm1' });
    expect(parse(`<message to='bob@${D}' type='chat'><reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction><reaction>👍</reaction><reaction>🎉</reaction></reactions></message>`))
      .to.deep.equal({ kind: 'react', to: { kind: 'user', name: 'bob' }, ref: 'm1', emoji: ['👍', '🎉'] });
    expect(parse(`<message to='bob@${D}' type='chat'><reactions xmlns='urn:xmpp:reactions:0' id='m1'/></message>`))
      .to.deep.include({ kind: 'react', emoji: [] }); // an empty set: no reactions of mine
    expect(parse(`<message to='bob@${D}' type='chat' id='c3'><body>yes</body><reply xmlns='urn:xmpp:reply:0' to='bob@${D}' id='m1'/></message>`))
      .to.deep.include({ kind: 'send', text: 'yes', id: 'c3', replyTo: 'm1' });
    const many = Array.from({ length: 21 }, (_, i) => `<reaction>e${i}</reaction>`).join('');
    for (const bad of [
      `<message to='bob@${D}' type='chat'><body>x</body><replace xmlns='urn:xmpp:message-correct:0'/></message>`,
      `<message to='bob@${D}' type='chat'><replace xmlns='urn:xmpp:message-correct:0' id='c1'/></message>`,
      `<message to='bob@${D}' type='chat'><retract xmlns='urn:xmpp:message-retract:1'/></message>`,
      `<message to='bob@${D}' type='chat'><reactions xmlns='urn:xmpp:reactions:0'><reaction>👍</reaction></reactions></message>`,
      `<message to='bob@${D}' type='chat'><reactions xmlns='urn:xmpp:reactions:0' id='m1'>${many}</reactions></message>`,
    ]) {
      expect(parse(bad), bad).to.deep.include({ kind: 'error', condition: 'bad-request' });
    }
  });

  it('renders changes as corrections, retractions and the reactions of who changed them; own direct changes are not echoed', () => {
    const s = createSession('s', 1, negotiate({ ver: '1.6' }) as Negotiated, 0);
    const ctx = { domain: D, me: `bob@${D}/r`, myName: 'bob', kindOf: () => 'direct' as const, peerOf: () => undefined, now: Date.now() };
    const m: MessageView = { id: 'm1', conversation: 'd1', seq: 3, from: 'alice', text: 'fixed', sent_at: new Date().toISOString(), edited_at: new Date().toISOString() };
    const [edit] = renderEvent({ type: 'message_changed', change: 'edited', message: m, by: 'alice' }, s, ctx).map(serialize);
    expect(edit).to.include(`from='alice@${D}'`).and.include('<body>fixed</body>').and.include("<replace xmlns='urn:xmpp:message-correct:0' id='m1'/>");
    const [gone] = renderEvent({ type: 'message_changed', change: 'deleted', message: { ...m, text: '', deleted: true }, by: 'alice' }, s, ctx).map(serialize);
    expect(gone).to.include("<retract xmlns='urn:xmpp:message-retract:1' id='m1'/>").and.not.include('<body');
    const rx = { ...m, reactions: [{ emoji: '👍', users: ['alice', 'carol'] }, { emoji: '🎉', users: ['carol'] }] };
    const [mine] = renderEvent({ type: 'message_changed', change: 'reactions', message: rx, by: 'carol' }, s, ctx).map(serialize);
    expect(mine).to.include(`from='carol@${D}'`).and.include("<reactions xmlns='urn:xmpp:reactions:0' id='m1'><reaction>👍</reaction><reaction>🎉</reaction></reactions>");
    expect(renderEvent({ type: 'message_changed', change: 'reactions', message: rx, by: 'bob' }, s, ctx)).to.deep.equal([]);
    const [reply] = renderEvent({ type: 'message', message: { ...m, id: 'm2', text: 'sure', reply_to: { id: 'm0', from: 'bob', text: 'lunch?' } } }, s, ctx).map(serialize);
    expect(reply).to.include(`<reply xmlns='urn:xmpp:reply:0' to='bob@${D}' id='m0'/>`);
    expect(CORRECTION_FEATURES).to.have.members(['urn:xmpp:message-correct:0', 'urn:xmpp:message-retract:1', 'urn:xmpp:reactions:0', 'urn:xmpp:reply:0']);
  });
});
