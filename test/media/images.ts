import { constants, crc32, createDeflate } from 'node:zlib';
import sharp from 'sharp';

/**
 * Test images, made on the spot with sharp (no binary fixtures in the repository).
 */

/** A red-left / blue-right photo stored sideways: EXIF orientation 6 and a GPS position in its EXIF. */
export async function sidewaysJpegWithGps(width = 1200, height = 800): Promise<Buffer> {
  const half = Math.floor(width / 2);
  const red = await sharp({ create: { width: half, height, channels: 3, background: '#ff0000' } }).png().toBuffer();
  return sharp({ create: { width, height, channels: 3, background: '#0000ff' } })
    .composite([{ input: red, left: 0, top: 0 }])
    .jpeg({ quality: 90 })
    .withMetadata({ orientation: 6 })
    .withExif({ IFD0: { Make: 'ParleyCam' }, IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '51/1 30/1 0/1', GPSMapDatum: 'WGS-84' } })
    .toBuffer();
}

/** A half-transparent PNG. */
export function transparentPng(width = 800, height = 600): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 4, background: { r: 0, g: 128, b: 0, alpha: 0.5 } } }).png().toBuffer();
}

/** An opaque WebP. */
export function webp(width = 1000, height = 1000): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: '#808000' } }).webp().toBuffer();
}

/** A two-frame animated GIF (or WebP): blue first, then green. */
export async function animated(format: 'gif' | 'webp' = 'gif', width = 200, height = 150): Promise<Buffer> {
  const frame = (background: string) => sharp({ create: { width, height, channels: 4, background } }).png().toBuffer();
  const img = sharp([await frame('#0000ff'), await frame('#00ff00')], { join: { animated: true } });
  return (format === 'gif' ? img.gif({ delay: [100, 100] }) : img.webp({ delay: [100, 100] })).toBuffer();
}

/** A noisy photo-like JPEG of the given size (noise defeats compression, as a real photo does). */
export function noisyJpeg(width: number, height: number, quality = 85): Promise<Buffer> {
  return sharp({
    create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 30 } },
  })
    .jpeg({ quality })
    .toBuffer();
}

/** A noisy PNG of the given size. */
export function noisyPng(width: number, height: number): Promise<Buffer> {
  return sharp({
    create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 30 } },
  })
    .png({ compressionLevel: 3 })
    .toBuffer();
}

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

/**
 * A real, valid solid-black greyscale PNG of side×side pixels, built by hand: 16000×16000 is 256 MP
 * (256 MB of pixels once decoded) in a file of a few hundred KB. This is the "PNG bomb".
 */
export async function pngBomb(side = 16000): Promise<Buffer> {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // greyscale
  // Z_RLE at level 6: the same ~250 KB as level 9 in a fifteenth of the time for runs of zeros.
  const deflate = createDeflate({ level: 6, strategy: constants.Z_RLE });
  const parts: Buffer[] = [];
  deflate.on('data', (d: Buffer) => parts.push(d));
  const done = new Promise((resolve, reject) => deflate.on('end', resolve).on('error', reject));
  const rowsPerWrite = 500;
  const block = Buffer.alloc((side + 1) * rowsPerWrite); // each row: filter byte 0 + zero pixels
  for (let y = 0; y < side; y += rowsPerWrite) {
    const rows = Math.min(rowsPerWrite, side - y);
    if (!deflate.write(block.subarray(0, rows * (side + 1)))) await new Promise((r) => deflate.once('drain', r));
  }
  deflate.end();
  await done;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', Buffer.concat(parts)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A small PDF that file-type recognises. */
export function pdf(extra = 'a secret plan'): Buffer {
  return Buffer.from(`%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ${extra}\ntrailer << /Root 1 0 R >>\n%%EOF\n`);
}

/** A one-entry stored (uncompressed) zip archive, built by hand. */
export function zip(name = 'note.txt', content = Buffer.from('hello from a zip')): Buffer {
  const n = Buffer.from(name);
  const crc = crc32(content) >>> 0;
  const local = Buffer.alloc(30);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(10, 4);
  local.writeUInt32LE(crc, 14);
  local.writeUInt32LE(content.length, 18);
  local.writeUInt32LE(content.length, 22);
  local.writeUInt16LE(n.length, 26);
  const central = Buffer.alloc(46);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(20, 4);
  central.writeUInt16LE(10, 6);
  central.writeUInt32LE(crc, 16);
  central.writeUInt32LE(content.length, 20);
  central.writeUInt32LE(content.length, 24);
  central.writeUInt16LE(n.length, 28);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(46 + n.length, 12);
  end.writeUInt32LE(30 + n.length + content.length, 16);
  return Buffer.concat([local, n, content, central, n, end]);
}

/** The colour of one pixel of an encoded image, as [r, g, b]. */
export async function pixel(img: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(img).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}
