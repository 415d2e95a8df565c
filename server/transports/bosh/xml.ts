/**
 * A small strict XML parser and serializer for BOSH bodies and the XMPP stanzas inside them.
 *
 * Why our own and not a DOM: the input comes from anyone on the internet, so the parser must be
 * boring. No DTD, no entity other than the five predefined ones (and numeric character
 * references), no comments, no processing instructions except the XML declaration, bounded depth,
 * element count and attribute count. Every failure is an XmlError (a protocol error for the
 * caller), never anything else. Namespaces are resolved, because BOSH and XMPP dispatch on them.
 */

/** A parsed or built element. `attrs` keeps qualified names as written, xmlns declarations included. */
export interface XmlElement {
  /** The qualified name as written (`stream:features`). */
  name: string;
  /** The local part of the name (`features`). */
  local: string;
  /** The resolved namespace URI, or null when none is in scope. */
  ns: string | null;
  attrs: Record<string, string>;
  children: XmlNode[];
}

/** A child: an element or a run of text. */
export type XmlNode = XmlElement | string;

/** Malformed or forbidden input; the caller maps it to the protocol's error. */
export class XmlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XmlError';
  }
}

/** Limits that keep a hostile body from costing more than its bytes. */
export interface ParseLimits {
  /** 32 levels: an XMPP stanza inside a BOSH body never needs more than about 8. */
  maxDepth: number;
  /** Elements per document; a 64 KiB body of `<a/>` would otherwise be 16,000 objects. */
  maxElements: number;
  /** Attributes per element. */
  maxAttributes: number;
}

/** What a parse cost, for tests that pin its cost to the body's size. */
export interface ParseStats {
  /** Namespace bindings recorded: one per xmlns attribute, however deep (never a copy of the parent's). */
  bindings: number;
}

/**
 * The namespace bindings in scope at an element: its own declarations, then its parent's scope.
 * Linked, not copied: an element that declares a prefix costs its own declarations, never a copy
 * of every prefix above it (a crafted 64 KB body of nested declarations once cost 400 ms).
 * Lookups walk at most maxDepth links.
 */
interface Scope {
  readonly own: Map<string, string | null>;
  readonly parent: Scope | null;
}

function lookup(scope: Scope | null, prefix: string): string | null | undefined {
  for (let s = scope; s; s = s.parent) {
    const v = s.own.get(prefix);
    if (v !== undefined) return v;
  }
  return undefined;
}

/** Defaults for BOSH request bodies. */
export const DEFAULT_LIMITS: ParseLimits = { maxDepth: 32, maxElements: 4000, maxAttributes: 64 };

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const NAME_START = /[A-Za-z_\u00C0-\uFFFF]/;
const NAME_RE = /[A-Za-z_\u00C0-\uFFFF][A-Za-z0-9_.\-:\u00B7\u00C0-\uFFFF]*/y;
// XML 1.0 forbids these code points anywhere in a document.
const FORBIDDEN_CHARS = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', apos: "'", quot: '"' };

/** Parse one XML document (optionally preceded by an XML declaration) into its root element. */
export function parseXml(input: string, limits: ParseLimits = DEFAULT_LIMITS, stats?: ParseStats): XmlElement {
  if (FORBIDDEN_CHARS.test(input)) throw new XmlError('forbidden character');
  let pos = 0;
  let elementCount = 0;
  const len = input.length;

  const fail = (msg: string): never => {
    throw new XmlError(`${msg} at offset ${pos}`);
  };
  const skipSpace = () => {
    while (pos < len) {
      const c = input.charCodeAt(pos);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) pos++;
      else break;
    }
  };
  const readName = (): string => {
    NAME_RE.lastIndex = pos;
    const m = NAME_RE.exec(input);
    if (!m) return fail('expected a name');
    pos += m[0].length;
    return m[0];
  };
  const decode = (raw: string): string => {
    if (raw.indexOf('&') < 0) return raw;
    return raw.replace(/&([^;&]{0,12});?/g, (whole, ref: string) => {
      if (!whole.endsWith(';')) throw new XmlError('unterminated entity reference');
      if (ref.startsWith('#')) {
        const code = ref[1] === 'x' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
        const valid = /^#(x[0-9a-fA-F]{1,6}|[0-9]{1,7})$/.test(ref) && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff);
        if (!valid) throw new XmlError('bad character reference');
        const ch = String.fromCodePoint(code);
        if (FORBIDDEN_CHARS.test(ch)) throw new XmlError('forbidden character reference');
        return ch;
      }
      const v = PREDEFINED[ref];
      if (v === undefined) throw new XmlError(`undeclared entity &${ref};`);
      return v;
    });
  };

  // Prolog: an optional XML declaration, whitespace. Anything else before the root is refused.
  if (input.startsWith('\uFEFF')) pos = 1;
  if (input.startsWith('<?xml', pos)) {
    const end = input.indexOf('?>', pos);
    if (end < 0) fail('unterminated XML declaration');
    pos = end + 2;
  }
  skipSpace();
  if (input[pos] !== '<') fail('expected the root element');

  type Frame = { el: XmlElement; scope: Scope };
  const stack: Frame[] = [];
  let root: XmlElement | null = null;
  const rootScope: Scope = { own: new Map<string, string | null>([['xml', XML_NS]]), parent: null };

  const openTag = () => {
    pos++; // '<'
    const name = readName();
    const rawAttrs: Array<[string, string]> = [];
    for (;;) {
      const before = pos;
      skipSpace();
      const c = input[pos];
      if (c === '>' || c === '/') break;
      if (pos === before) fail('expected whitespace before attribute');
      if (pos >= len) fail('unterminated start tag');
      const an = readName();
      skipSpace();
      if (input[pos] !== '=') fail('expected =');
      pos++;
      skipSpace();
      const q = input[pos];
      if (q !== '"' && q !== "'") fail('expected quoted attribute value');
      const end = input.indexOf(q, pos + 1);
      if (end < 0) fail('unterminated attribute value');
      const raw = input.slice(pos + 1, end);
      if (raw.includes('<')) fail('< in attribute value');
      pos = end + 1;
      if (rawAttrs.some(([n]) => n === an)) fail(`duplicate attribute ${an}`);
      if (rawAttrs.length >= limits.maxAttributes) fail('too many attributes');
      rawAttrs.push([an, decode(raw)]);
    }
    let selfClosing = false;
    if (input[pos] === '/') {
      selfClosing = true;
      pos++;
    }
    if (input[pos] !== '>') fail('expected >');
    pos++;

    const parentScope = stack.length ? stack[stack.length - 1]!.scope : rootScope;
    let scope = parentScope;
    for (const [an, av] of rawAttrs) {
      if (an === 'xmlns' || an.startsWith('xmlns:')) {
        if (scope === parentScope) scope = { own: new Map(), parent: parentScope };
        const prefix = an === 'xmlns' ? '' : an.slice(6);
        if (prefix === 'xml' || prefix === 'xmlns') fail('reserved prefix');
        if (prefix && av === '') fail('empty namespace for a prefix');
        scope.own.set(prefix, av === '' ? null : av);
        if (stats) stats.bindings++;
      }
    }
    const colon = name.indexOf(':');
    const prefix = colon >= 0 ? name.slice(0, colon) : '';
    const local = colon >= 0 ? name.slice(colon + 1) : name;
    if (!local || local.includes(':')) fail('bad qualified name');
    let ns: string | null = null;
    if (prefix) {
      const found = lookup(scope, prefix);
      if (found === undefined || found === null) fail(`unbound prefix ${prefix}`);
      ns = found as string;
    } else {
      ns = lookup(scope, '') ?? null;
    }
    for (const [an] of rawAttrs) {
      const ac = an.indexOf(':');
      if (ac >= 0 && an.slice(0, ac) !== 'xmlns' && lookup(scope, an.slice(0, ac)) == null) {
        fail(`unbound attribute prefix in ${an}`);
      }
    }
    if (++elementCount > limits.maxElements) fail('too many elements');
    const el: XmlElement = { name, local, ns, attrs: Object.fromEntries(rawAttrs), children: [] };
    if (stack.length) stack[stack.length - 1]!.el.children.push(el);
    else if (root) fail('more than one root element');
    else root = el;
    if (!selfClosing) {
      if (stack.length + 1 > limits.maxDepth) fail('too deep');
      stack.push({ el, scope });
    }
  };

  while (pos < len) {
    if (!stack.length) {
      if (root) {
        skipSpace();
        if (pos < len) fail('content after the root element');
        break;
      }
      openTag();
      continue;
    }
    const lt = input.indexOf('<', pos);
    if (lt < 0) fail('unterminated element');
    if (lt > pos) {
      const raw = input.slice(pos, lt);
      if (raw.includes(']]>')) fail(']]> in text');
      pushText(stack[stack.length - 1]!.el, decode(raw));
      pos = lt;
    }
    if (input.startsWith('</', pos)) {
      pos += 2;
      const name = readName();
      skipSpace();
      if (input[pos] !== '>') fail('expected >');
      pos++;
      const top = stack.pop()!;
      if (top.el.name !== name) fail(`mismatched end tag ${name}`);
    } else if (input.startsWith('<![CDATA[', pos)) {
      const end = input.indexOf(']]>', pos + 9);
      if (end < 0) fail('unterminated CDATA');
      pushText(stack[stack.length - 1]!.el, input.slice(pos + 9, end));
      pos = end + 3;
    } else if (input.startsWith('<!', pos)) {
      fail('comments and declarations are not allowed');
    } else if (input.startsWith('<?', pos)) {
      fail('processing instructions are not allowed');
    } else if (NAME_START.test(input[pos + 1] ?? '')) {
      openTag();
    } else {
      fail('bad markup');
    }
  }
  if (stack.length || !root) fail('unexpected end of input');
  return root!;
}

function pushText(el: XmlElement, text: string): void {
  if (!text) return;
  const last = el.children[el.children.length - 1];
  if (typeof last === 'string') el.children[el.children.length - 1] = last + text;
  else el.children.push(text);
}

/** Escape text content. */
export function escapeText(s: string): string {
  return s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

/** Escape an attribute value for single or double quotes. */
export function escapeAttr(s: string): string {
  return s.replace(/[&<>'"\r\n\t]/g, (c) => {
    switch (c) {
      case '&': return '&amp;';
      case '<': return '&lt;';
      case '>': return '&gt;';
      case "'": return '&apos;';
      case '"': return '&quot;';
      default: return `&#${c.charCodeAt(0)};`;
    }
  });
}

/** Serialize an element (attributes in insertion order, undefined ones skipped). */
export function serialize(node: XmlNode): string {
  if (typeof node === 'string') return escapeText(node);
  let out = `<${node.name}`;
  for (const [k, v] of Object.entries(node.attrs)) {
    if (v === undefined) continue;
    out += ` ${k}='${escapeAttr(v)}'`;
  }
  if (!node.children.length) return `${out}/>`;
  out += '>';
  for (const c of node.children) out += serialize(c);
  return `${out}</${node.name}>`;
}

/** Build an element; `ns` is taken from an `xmlns` attribute when present. Undefined attributes are dropped. */
export function el(name: string, attrs: Record<string, string | number | undefined> = {}, ...children: Array<XmlNode | null | undefined | false>): XmlElement {
  const clean: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) clean[k] = String(v);
  const colon = name.indexOf(':');
  return {
    name,
    local: colon >= 0 ? name.slice(colon + 1) : name,
    ns: clean.xmlns ?? null,
    attrs: clean,
    children: children.filter((c): c is XmlNode => c !== null && c !== undefined && c !== false && c !== ''),
  };
}

/** Child elements, optionally only those with this local name (and namespace). */
export function childElements(parent: XmlElement, local?: string, ns?: string): XmlElement[] {
  const out: XmlElement[] = [];
  for (const c of parent.children) {
    if (typeof c === 'string') continue;
    if (local !== undefined && c.local !== local) continue;
    if (ns !== undefined && c.ns !== ns) continue;
    out.push(c);
  }
  return out;
}

/** The first child element with this local name (and namespace), or undefined. */
export function child(parent: XmlElement, local: string, ns?: string): XmlElement | undefined {
  return childElements(parent, local, ns)[0];
}

/** The concatenated text of an element's direct text children. */
export function textOf(e: XmlElement | undefined): string {
  if (!e) return '';
  let s = '';
  for (const c of e.children) if (typeof c === 'string') s += c;
  return s;
}
