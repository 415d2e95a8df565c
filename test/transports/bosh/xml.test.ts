import { expect } from 'chai';
import { child, el, parseXml, serialize, textOf, XmlError, type ParseStats } from '../../../server/transports/bosh/xml.js';
import { craftedNamespaceBody } from './helpers.js';

const BOSH = 'http://jabber.org/protocol/httpbind';

describe('BOSH XML parser', function () {
  it('parses a Strophe session request with namespaces resolved', function () {
    const b = parseXml(
      `<body content='text/xml; charset=utf-8' hold='1' rid='1573741820' to='example.com' ver='1.6' wait='60' xml:lang='en' xmpp:version='1.0' xmlns='${BOSH}' xmlns:xmpp='urn:xmpp:xbosh'/>`,
    );
    expect(b.local).to.equal('body');
    expect(b.ns).to.equal(BOSH);
    expect(b.attrs.rid).to.equal('1573741820');
    expect(b.attrs['xmpp:version']).to.equal('1.0');
  });

  it('gives nested stanzas their own default namespace and decodes entities', function () {
    const b = parseXml(`<?xml version='1.0'?>\n<body xmlns='${BOSH}' rid='2'><message xmlns='jabber:client' to='bob@x'><body>a &lt;b&gt; &amp; &#233;&#x1F600; &quot;q&apos;</body></message></body>`);
    const m = child(b, 'message', 'jabber:client')!;
    expect(m.attrs.to).to.equal('bob@x');
    expect(textOf(child(m, 'body', 'jabber:client'))).to.equal('a <b> & é😀 "q\'');
  });

  it('keeps CDATA as text', function () {
    const b = parseXml(`<a><![CDATA[<not markup> & stuff]]></a>`);
    expect(textOf(b)).to.equal('<not markup> & stuff');
  });

  const bad: Array<[string, string]> = [
    ['not XML at all', 'hello'],
    ['an empty document', ''],
    ['a DOCTYPE (entity expansion attacks)', `<!DOCTYPE x [<!ENTITY a "aaaa">]><body>&a;</body>`],
    ['an undeclared entity', `<body>&nbsp;</body>`],
    ['a comment', `<body><!-- hi --></body>`],
    ['a processing instruction inside', `<body><?php x ?></body>`],
    ['a mismatched end tag', `<body><a></b></body>`],
    ['an unclosed element', `<body><a>`],
    ['two roots', `<a/><b/>`],
    ['a duplicate attribute', `<a x='1' x='2'/>`],
    ['an unbound prefix', `<x:a/>`],
    ['a NUL character', `<a>\u0000</a>`],
    ['a bad character reference', `<a>&#0;</a>`],
    ['a surrogate character reference', `<a>&#xD800;</a>`],
    ['an unterminated entity', `<a>&amp</a>`],
    ['< in an attribute', `<a x='<'/>`],
  ];
  for (const [what, input] of bad) {
    it(`refuses ${what} with an XmlError`, function () {
      expect(() => parseXml(input)).to.throw(XmlError);
    });
  }

  it('refuses documents past the depth and element limits', function () {
    const deep = '<a>'.repeat(40) + '</a>'.repeat(40);
    expect(() => parseXml(deep)).to.throw(XmlError, /too deep/);
    const wide = `<a>${'<b/>'.repeat(5000)}</a>`;
    expect(() => parseXml(wide)).to.throw(XmlError, /too many elements/);
  });

  it('survives random garbage: every failure is an XmlError', function () {
    const alphabet = `<>/='"&;#x abc:!?[]-\n`;
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let i = 0; i < 3000; i++) {
      let s = '';
      const n = Math.floor(rnd() * 40);
      for (let j = 0; j < n; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
      try {
        parseXml(s);
      } catch (err) {
        expect(err).to.be.instanceOf(XmlError, s);
      }
    }
  });

  it('serializes with escaping and round-trips', function () {
    const e = el('message', { xmlns: 'jabber:client', to: "a'b&c" }, el('body', {}, 'x < y & z'));
    const s = serialize(e);
    expect(s).to.equal(`<message xmlns='jabber:client' to='a&apos;b&amp;c'><body>x &lt; y &amp; z</body></message>`);
    const back = parseXml(s);
    expect(back.attrs.to).to.equal("a'b&c");
    expect(textOf(child(back, 'body')!)).to.equal('x < y & z');
  });

  it('a body of nested prefix declarations costs its own declarations, not a copy of every parent\'s (issue 11 item 5)', function () {
    const body = craftedNamespaceBody();
    const declared = body.match(/ xmlns(:[^=]+)?=/g)!.length;
    const stats: ParseStats = { bindings: 0 };
    const b = parseXml(body, undefined, stats);
    // Before: each leaf copied the ~1,900 bindings above it (5 million map entries, 150-450 ms).
    expect(stats.bindings).to.equal(declared);
    // prefixes still resolve through every level
    const deepest = (function down(e: typeof b): typeof b {
      const c = e.children.find((x) => typeof x !== 'string' && x.children.length);
      return c && typeof c !== 'string' ? down(c) : e;
    })(b);
    expect(deepest.name).to.equal('e29');
    const scoped = parseXml(`<a xmlns:p='u1'><b xmlns:q='u2'><c xmlns:r='u3'><p:d q:x='1'/></c></b></a>`);
    const d = child(child(child(scoped, 'b')!, 'c')!, 'd')!;
    expect(d.ns).to.equal('u1');
    expect(() => parseXml(`<a><b xmlns:p='u'/><p:c/></a>`)).to.throw(XmlError, /unbound prefix/); // a sibling's prefix is not in scope
  });
});
