import { fileTypeFromBuffer } from 'file-type';

/**
 * The type of an upload, from its first bytes only: the name and the client's Content-Type are
 * never trusted (a "photo.png" may be HTML, and an uploaded page must never render in Parley's origin).
 */

/** How many leading bytes sniffing looks at; 64 KiB covers every signature file-type checks for the formats we care about. */
export const SNIFF_BYTES = 64 * 1024;

/** What the bytes are. `image` is set for the formats sharp decodes and we make thumbnails of. */
export type Sniffed = { type: string; ext: string | undefined; image: boolean };

// Raster formats we thumbnail and serve inline. Deliberately not SVG (it is a document that can
// carry script) and not TIFF/BMP/ICO (browsers do not show them consistently; they download).
const IMAGE_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/avif', 'image/heic', 'image/heif']);

/** Detect the type from the head of the file; unknown bytes (text, HTML, random) are application/octet-stream. */
export async function sniff(head: Buffer): Promise<Sniffed> {
  const found = head.length ? await fileTypeFromBuffer(head).catch(() => undefined) : undefined;
  if (!found) return { type: 'application/octet-stream', ext: undefined, image: false };
  return { type: found.mime, ext: found.ext, image: IMAGE_TYPES.has(found.mime) };
}

/** Whether a detected type may be shown inline (`Content-Disposition: inline`). */
export function isInlineImage(type: string): boolean {
  return IMAGE_TYPES.has(type);
}
