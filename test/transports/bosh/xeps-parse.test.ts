import { expect } from 'chai';
import { parseQuery } from '../../../server/transports/bosh/mam.js';
import { uploadedFileIn } from '../../../server/transports/bosh/upload.js';
import { parseXml } from '../../../server/transports/bosh/xml.js';

const q = (inner: string) => parseXml(`<query xmlns='urn:xmpp:mam:2'>${inner}</query>`);
const form = (fields: Record<string, string>) =>
  `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>${Object.entries(fields)
    .map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`)
    .join('')}</x>`;
const rsm = (inner: string) => `<set xmlns='http://jabber.org/protocol/rsm'>${inner}</set>`;

describe('MAM query parsing and upload URLs (pure)', () => {
  it('reads the form fields and RSM paging', () => {
    expect(parseQuery(q(''))).to.deep.equal({ q: { max: 50 } });
    const got = parseQuery(q(form({ with: 'bob@d', start: '2026-01-02T03:04:05Z', end: '2026-01-02T03:04:05.123+01:00' }) + rsm('<max>10</max><before/>')));
    expect(got).to.deep.equal({
      with: 'bob@d',
      q: { max: 10, beforeId: '', start: new Date('2026-01-02T03:04:05Z'), end: new Date('2026-01-02T02:04:05.123Z') },
    });
    expect(parseQuery(q(rsm('<after>m1</after><max>999</max>')))).to.deep.equal({ q: { max: 200, afterId: 'm1' } });
    expect(parseQuery(q(form({ 'after-id': 'a', 'before-id': 'b' })))).to.deep.equal({ q: { max: 50, afterId: 'a', beforeId: 'b' } });
  });

  it('names what is wrong with a bad query', () => {
    expect(parseQuery(q(form({ start: 'yesterday' })))).to.equal('start is not a date-time');
    expect(parseQuery(q(form({ end: '2026-13-45T99:99:99Z' })))).to.equal('end is not a date-time');
    expect(parseQuery(q(form({ colour: 'red' })))).to.equal('unsupported field colour');
    expect(parseQuery(q(rsm('<max>-1</max>')))).to.equal('max must be a whole number');
    expect(parseQuery(q(rsm('<max>ten</max>')))).to.equal('max must be a whole number');
    expect(parseQuery(q(rsm('<index>3</index>')))).to.equal('index is not supported');
    expect(parseQuery(q(rsm('<after/>')))).to.equal('after needs an id');
    expect(parseQuery(q(`<x xmlns='jabber:x:data'><field var='FORM_TYPE'><value>urn:other</value></field></x>`))).to.equal('unknown FORM_TYPE');
    expect(parseQuery(q(`<x xmlns='jabber:x:data'><field><value>x</value></field></x>`))).to.equal('a form field without var');
  });

  it('recognises exactly a file GET URL as an upload to attach', () => {
    expect(uploadedFileIn('https://chat.example/api/files/fAbC_-9')).to.equal('fAbC_-9');
    expect(uploadedFileIn('  http://127.0.0.1:8080/api/files/fX  ')).to.equal('fX');
    expect(uploadedFileIn('look: https://chat.example/api/files/fX')).to.equal(null);
    expect(uploadedFileIn('https://chat.example/api/files/fX/thumbnail')).to.equal(null);
    expect(uploadedFileIn('https://chat.example/api/files/gX')).to.equal(null);
    expect(uploadedFileIn('/api/files/fX')).to.equal(null);
  });
});
