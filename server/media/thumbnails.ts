import { availableParallelism } from 'node:os';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { errors } from '../core/errors.js';
import type { Logger } from '../log.js';

/**
 * Thumbnails with sharp (libvips). Two per image:
 * - small: 96×96, centre-cropped square, for conversation lists and attachment chips. 96 px is a
 *   48 CSS px tile on a 2× screen; Synapse's 96 crop is the same size for the same reason.
 * - large: fits inside 640×640, never enlarged, for the chat view. A message bubble is at most
 *   about 320 CSS px wide, so 640 px is sharp on 2× screens; a square box (not Synapse's 640×480)
 *   gives portrait photos the same long side as landscape ones.
 * The large one is decoded from the original (JPEG's shrink-on-load decodes a 12 MP photo at 1/4
 * scale); the small one is cut from the large one's pixels, so the original is decoded once.
 * Output: JPEG (every client decodes it) unless the source has alpha, then WebP (keeps
 * transparency at a fraction of PNG's size). Built from raw pixels, so no metadata survives:
 * EXIF (GPS, camera serials) is stripped, and rotate() has already applied the EXIF orientation.
 */
export const SMALL = 96;
export const LARGE = 640;

// sharp.cache(false): libvips' operation cache (default 50 MB) only helps when the same input is
// processed again; uploads never are, so it would be resident memory for nothing.
// sharp.concurrency(1): one libvips thread per image. Parallelism comes from running several
// images at once (JOBS below) instead, which keeps per-image memory low and each job on one core
// (the benchmark measures per-core cost that way). On glibc without jemalloc sharp defaults to 1 anyway.
sharp.cache(false);
sharp.concurrency(1);

// Images processed at once per process: one per core but one, so a core stays free for the event
// loop (on a 2-core dyno, media work must not stall long-polls: measured in bench/media.ts). More
// would only queue inside libuv's 4-thread pool, which password hashing and file I/O share, and
// raise peak memory without finishing sooner.
const JOBS = Math.max(1, availableParallelism() - 1);
let running = 0;
const waiting: (() => void)[] = [];

async function withJobSlot<T>(work: () => Promise<T>): Promise<T> {
  if (running >= JOBS) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await work();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

/** One thumbnail: encoded bytes and what they are. */
export type Thumbnail = { data: Buffer; type: 'image/jpeg' | 'image/webp'; width: number; height: number };

/** What an image upload yields: its displayed size, and thumbnails unless it could not be decoded. */
export type ImageResult = { width?: number; height?: number; small?: Thumbnail; large?: Thumbnail };

async function encode(img: Sharp, alpha: boolean): Promise<Thumbnail> {
  const out = alpha ? img.webp({ quality: 80 }) : img.jpeg({ quality: 80 });
  const { data, info } = await out.toBuffer({ resolveWithObject: true });
  return { data, type: alpha ? 'image/webp' : 'image/jpeg', width: info.width, height: info.height };
}

/**
 * Read an uploaded image's size and make its thumbnails.
 * Throws a 422 `image_too_large` when it has more than `pixelLimit` pixels: checked from the header
 * before any pixel is decoded, so a 16000×16000 PNG "bomb" of a few KB costs microseconds, not 1 GB.
 * Corrupt or truncated images are fail-soft: logged, and the result has no thumbnails (the upload is
 * kept as a plain file). Animated GIF/WebP: the first frame.
 */
export async function processImage(input: Buffer, pixelLimit: number, log: Logger): Promise<ImageResult> {
  let meta: Metadata;
  try {
    meta = await sharp(input, { pages: 1 }).metadata();
  } catch (err) {
    log.warn({ err: (err as Error).message }, 'image header unreadable; storing as a plain file');
    return {};
  }
  if (!meta.width || !meta.height) return {};
  if (meta.width * meta.height > pixelLimit) {
    throw errors.unprocessable(
      `image is ${meta.width}×${meta.height}; at most ${pixelLimit.toLocaleString('en')} pixels are accepted`,
      'image_too_large',
    );
  }
  const width = meta.autoOrient?.width ?? meta.width;
  const height = meta.autoOrient?.height ?? meta.height;
  try {
    return await withJobSlot(async () => {
      // limitInputPixels again here: the header check above is ours, this one is libvips' own, in
      // case a format's header and its decoder ever disagree.
      const { data, info } = await sharp(input, { pages: 1, limitInputPixels: pixelLimit })
        .rotate()
        .resize(LARGE, LARGE, { fit: 'inside', withoutEnlargement: true })
        .raw()
        .toBuffer({ resolveWithObject: true });
      const raw = { raw: { width: info.width, height: info.height, channels: info.channels } };
      const alpha = info.channels === 4 || info.channels === 2;
      const [large, small] = await Promise.all([
        encode(sharp(data, raw), alpha),
        encode(sharp(data, raw).resize(SMALL, SMALL, { fit: 'cover', position: 'centre' }), alpha),
      ]);
      return { width, height, large, small };
    });
  } catch (err) {
    log.warn({ err: (err as Error).message, width, height }, 'image could not be decoded; storing without thumbnails');
    return { width, height };
  }
}
