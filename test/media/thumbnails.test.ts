import { expect } from 'chai';
import { pino } from 'pino';
import sharp from 'sharp';
import { AppError } from '../../server/core/errors.js';
import { cleanFileName, contentDisposition } from '../../server/media/names.js';
import { sniff } from '../../server/media/sniff.js';
import { LARGE, processImage, SMALL } from '../../server/media/thumbnails.js';
import { animated, pdf, pixel, pngBomb, sidewaysJpegWithGps, transparentPng, webp, zip } from './images.js';

const log = pino({ level: 'silent' });
const LIMIT = 50_000_000;

describe('thumbnails', function () {
  it('a sideways phone photo: upright thumbnails of the promised sizes, with no EXIF (no GPS) left', async function () {
    const photo = await sidewaysJpegWithGps(1200, 800);
    expect((await sharp(photo).metadata()).exif?.includes('WGS-84'), 'the test photo carries GPS').to.equal(true);
    const r = await processImage(photo, LIMIT, log);
    expect([r.width, r.height]).to.deep.equal([800, 1200]); // as displayed
    expect([r.large?.width, r.large?.height]).to.deep.equal([Math.round((800 * LARGE) / 1200), LARGE]);
    expect([r.small?.width, r.small?.height]).to.deep.equal([SMALL, SMALL]);
    for (const t of [r.large!, r.small!]) {
      const meta = await sharp(t.data).metadata();
      expect(t.type).to.equal('image/jpeg');
      expect(meta.format).to.equal('jpeg');
      expect(meta.exif, 'EXIF stripped').to.equal(undefined);
      expect(meta.orientation ?? 1).to.equal(1);
    }
    // Stored red-left/blue-right, orientation 6 (turn 90° clockwise): upright it is red on top.
    const top = await pixel(r.large!.data, 200, 20);
    const bottom = await pixel(r.large!.data, 200, 600);
    expect(top[0]).to.be.greaterThan(200);
    expect(top[2]).to.be.lessThan(60);
    expect(bottom[2]).to.be.greaterThan(200);
    expect(bottom[0]).to.be.lessThan(60);
  });

  it('PNG with transparency keeps it (WebP thumbnails); a WebP gets JPEG ones', async function () {
    const png = await processImage(await transparentPng(800, 600), LIMIT, log);
    expect([png.width, png.height]).to.deep.equal([800, 600]);
    expect(png.large?.type).to.equal('image/webp');
    expect((await sharp(png.large!.data).metadata()).hasAlpha).to.equal(true);
    expect([png.large?.width, png.large?.height]).to.deep.equal([640, 480]);
    const w = await processImage(await webp(1000, 1000), LIMIT, log);
    expect([w.large?.type, w.large?.width, w.large?.height, w.small?.width]).to.deep.equal(['image/jpeg', 640, 640, 96]);
  });

  it('animated GIF and WebP: a still of the first frame', async function () {
    for (const format of ['gif', 'webp'] as const) {
      const r = await processImage(await animated(format, 200, 150), LIMIT, log);
      expect([r.width, r.height], format).to.deep.equal([200, 150]);
      const meta = await sharp(r.large!.data).metadata();
      expect(meta.pages ?? 1, format).to.equal(1);
      expect([meta.width, meta.height], format).to.deep.equal([200, 150]); // never enlarged
      const [red, green, blue] = await pixel(r.large!.data, 100, 75);
      expect(blue, `${format} first frame is blue`).to.be.greaterThan(200);
      expect(green! + red!, format).to.be.lessThan(80);
    }
  });

  it('a truncated JPEG: no thumbnails, no throw', async function () {
    const photo = await sidewaysJpegWithGps(1200, 800);
    const r = await processImage(photo.subarray(0, Math.floor(photo.length / 2)), LIMIT, log);
    expect(r.large).to.equal(undefined);
    expect(r.small).to.equal(undefined);
  });

  it('garbage behind a PNG signature: no thumbnails, no throw', async function () {
    const fake = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('not really a png '.repeat(50))]);
    expect(await processImage(fake, LIMIT, log)).to.deep.equal({});
  });

  it('a 16000×16000 PNG bomb is refused from its header in milliseconds, without decoding', async function () {
    const bomb = await pngBomb(16000);
    const rssBefore = process.memoryUsage().rss;
    const t0 = performance.now();
    let caught: unknown;
    await processImage(bomb, LIMIT, log).catch((e) => (caught = e));
    const ms = performance.now() - t0;
    expect(caught).to.be.instanceOf(AppError);
    expect((caught as AppError).status).to.equal(422);
    expect((caught as AppError).code).to.equal('image_too_large');
    expect(ms).to.be.lessThan(200);
    expect(process.memoryUsage().rss - rssBefore).to.be.lessThan(50 * 1024 * 1024);
  });
});

describe('type sniffing', function () {
  it('goes by the bytes: images, PDF, zip; HTML, SVG and text are not images', async function () {
    expect(await sniff(await sidewaysJpegWithGps(100, 80))).to.deep.include({ type: 'image/jpeg', image: true });
    expect(await sniff(await transparentPng(10, 10))).to.deep.include({ type: 'image/png', image: true });
    expect(await sniff(await animated('gif', 10, 10))).to.deep.include({ type: 'image/gif', image: true });
    expect(await sniff(await webp(10, 10))).to.deep.include({ type: 'image/webp', image: true });
    expect(await sniff(pdf())).to.deep.include({ type: 'application/pdf', image: false });
    expect(await sniff(zip())).to.deep.include({ type: 'application/zip', image: false });
    expect(await sniff(Buffer.from('<html><script>alert(1)</script></html>'))).to.deep.include({ type: 'application/octet-stream', image: false });
    const svg = await sniff(Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'));
    expect(svg.image).to.equal(false);
    expect(await sniff(Buffer.alloc(0))).to.deep.include({ type: 'application/octet-stream' });
  });
});

describe('file names', function () {
  it('keeps only the last segment of a path, and drops control and bidi characters', function () {
    expect(cleanFileName('../../etc/passwd')).to.equal('passwd');
    expect(cleanFileName('C:\\Users\\me\\report.pdf')).to.equal('report.pdf');
    expect(cleanFileName('..')).to.equal('file');
    expect(cleanFileName('evil\u202Egpj.exe')).to.equal('evilgpj.exe');
    expect(cleanFileName('a\r\nb.txt')).to.equal('ab.txt');
    expect(cleanFileName(undefined)).to.equal('file');
    expect(cleanFileName('x'.repeat(500) + '.jpeg')).to.have.length(200).and.match(/\.jpeg$/);
  });

  it('makes a Content-Disposition that quotes safely and carries UTF-8 in filename*', function () {
    expect(contentDisposition('attachment', 'résumé "final".pdf')).to.equal(
      `attachment; filename="r_sum_ _final_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf`,
    );
    expect(contentDisposition('inline', 'a;b.png')).to.match(/^inline; filename="a_b\.png"; filename\*=UTF-8''a%3Bb\.png$/);
  });
});
