/**
 * File names from uploads: kept only as a label. They never reach a path (blob keys are made by the
 * server), and when sent back in Content-Disposition they are made safe for the header.
 */

/** Longest name kept, in characters: enough for any real file, small enough for a header line. */
const MAX_NAME = 200;

/**
 * A display name: the last path segment (a name like "../../etc/passwd" or "C:\\x\\y.pdf" keeps
 * only its base), control characters and bidi overrides removed, trimmed, at most MAX_NAME characters.
 */
export function cleanFileName(raw: string | undefined, fallback = 'file'): string {
  let name = (raw ?? '').normalize('NFC');
  name = name.split(/[/\\]/).pop() ?? '';
  // C0/C1 controls, DEL, and the Unicode bidi controls that make "evil\u202Egpj.exe" look like a .jpg.
  name = name.replace(/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '');
  name = name.trim().replace(/^\.+/, '');
  if (!name) name = fallback;
  if (name.length > MAX_NAME) {
    const dot = name.lastIndexOf('.');
    const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : '';
    name = name.slice(0, MAX_NAME - ext.length) + ext;
  }
  return name;
}

/**
 * A Content-Disposition value: an ASCII-only `filename` for old clients plus RFC 5987 `filename*`
 * with the UTF-8 name. Quotes, backslashes and anything outside printable ASCII never reach the
 * quoted form, so the header cannot be broken or extended.
 */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\%;]/g, '_') || 'file';
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}
