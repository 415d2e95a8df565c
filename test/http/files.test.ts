import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import supertest from 'supertest';
import { Attachments } from '../../server/media/attachments.js';
import { startS3 } from '../blobs/local-s3.js';
import { readAll } from '../blobs/contract.js';
import { as, pollEvents, register, type TestUser } from '../support/client.js';
import { requireServices } from '../support/services.js';
import { startStack, type Stack } from '../support/stack.js';
import { animated, pdf, pixel, pngBomb, sidewaysJpegWithGps, transparentPng, webp, zip } from '../media/images.js';

/** Small enough that "too large" costs little to send; large enough for every test image. */
const UPLOAD_LIMIT = 3_000_000;

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(path.join(e.parentPath, e.name));
  }
  return out;
}

for (const backend of ['embedded', 'real'] as const) {
  const store = backend === 'embedded' ? 'disk' : 'S3 (s3rver)';
  describe(`files over HTTP (${backend} database, ${store} blobs)`, function () {
    this.timeout(60_000);
    let stack: Stack;
    let url: string;
    let blobDir: string;
    let s3: Awaited<ReturnType<typeof startS3>> | undefined;
    let s3client: S3Client | undefined;
    let alice: TestUser, bob: TestUser, carol: TestUser;
    let conv: string;
    const savedEnv = { id: process.env['AWS_ACCESS_KEY_ID'], secret: process.env['AWS_SECRET_ACCESS_KEY'] };

    /** Every stored blob: files in BLOB_DIR, or objects in the bucket. */
    async function blobCount(): Promise<number> {
      if (!s3) return (await filesUnder(blobDir)).filter((f) => !f.includes(`${path.sep}.tmp${path.sep}`)).length;
      const list = await s3client!.send(new ListObjectsV2Command({ Bucket: s3.bucket }));
      return list.KeyCount ?? 0;
    }
    async function tempFiles(): Promise<number> {
      return s3 ? 0 : (await readdir(path.join(blobDir, '.tmp'))).length;
    }
    const upload = (user: TestUser, data: Buffer, filename: string, contentType?: string, conversation = conv) =>
      as(url, user).post(`/api/conversations/${conversation}/files`).attach('file', data, contentType ? { filename, contentType } : { filename });
    const download = (user: TestUser, p: string) =>
      as(url, user).get(p).buffer(true).parse((res, cb) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => cb(null, Buffer.concat(parts)));
      });

    before(async function () {
      blobDir = await mkdtemp(path.join(tmpdir(), 'parley-files-'));
      const env: Record<string, string> = { UPLOAD_LIMIT: String(UPLOAD_LIMIT), BLOB_DIR: blobDir };
      if (backend === 'real') {
        await requireServices(this);
        s3 = await startS3();
        // The S3 store takes its credentials from the usual AWS variables, as in production.
        process.env['AWS_ACCESS_KEY_ID'] = 'S3RVER';
        process.env['AWS_SECRET_ACCESS_KEY'] = 'S3RVER';
        Object.assign(env, { S3_BUCKET: s3.bucket, S3_ENDPOINT: s3.endpoint });
        s3client = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
      }
      stack = await startStack({ backend, env });
      url = stack.nodes[0]!.url;
      alice = await register(url, 'alice');
      bob = await register(url, 'bob');
      carol = await register(url, 'carol');
      const c = await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201);
      conv = c.body.conversation.id;
      await pollEvents(url, bob);
    });
    after(async function () {
      await stack?.close();
      s3client?.destroy();
      await s3?.stop();
      await rm(blobDir, { recursive: true, force: true });
      if (backend === 'real') {
        for (const [k, v] of [['AWS_ACCESS_KEY_ID', savedEnv.id], ['AWS_SECRET_ACCESS_KEY', savedEnv.secret]] as const) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    });

    it('alice sends bob a sideways phone photo: bob sees the thumbnail first, then gets the original byte for byte', async function () {
      const photo = await sidewaysJpegWithGps(1200, 800);
      const res = await upload(alice, photo, 'holiday.jpg', 'image/jpeg').field('text', 'look!').field('client_id', 'photo-1').expect(201);
      const m = res.body.message;
      expect(m).to.include({ text: 'look!', from: alice.name, client_id: 'photo-1' });
      const a = m.attachment;
      expect(a).to.include({ name: 'holiday.jpg', type: 'image/jpeg', size: photo.length, width: 800, height: 1200 });
      expect(a.url).to.equal(`/api/files/${a.id}`);
      expect(a.thumbnail_url).to.equal(`/api/files/${a.id}/thumbnail`);
      expect([a.thumbnail_width, a.thumbnail_height]).to.deep.equal([427, 640]);

      const event = (await pollEvents(url, bob)).find((e) => e.type === 'message' && e.message.id === m.id);
      expect(event?.message.attachment).to.deep.equal(a);

      const thumb = await download(bob, a.thumbnail_url).expect(200);
      expect(thumb.headers['content-type']).to.equal('image/jpeg');
      expect(thumb.headers['content-disposition']).to.match(/^inline;/);
      const tmeta = await sharp(thumb.body as Buffer).metadata();
      expect([tmeta.width, tmeta.height]).to.deep.equal([427, 640]);
      expect(tmeta.exif, 'no EXIF, so no GPS, in the thumbnail').to.equal(undefined);
      expect((await pixel(thumb.body as Buffer, 200, 20))[0], 'upright: red on top').to.be.greaterThan(200);
      const small = await download(bob, a.small_thumbnail_url).expect(200);
      const smeta = await sharp(small.body as Buffer).metadata();
      expect([smeta.width, smeta.height, smeta.exif]).to.deep.equal([96, 96, undefined]);

      const original = await download(bob, a.url).expect(200);
      expect(original.headers['content-type']).to.equal('image/jpeg');
      expect(original.headers['x-content-type-options']).to.equal('nosniff');
      expect(original.headers['cache-control']).to.equal('private, max-age=86400');
      expect((original.body as Buffer).equals(photo)).to.equal(true);
    });

    it('PNG, GIF (animated) and WebP get thumbnails of the promised sizes', async function () {
      const cases: [Buffer, string, string, number[]][] = [
        [await transparentPng(800, 600), 'a.png', 'image/png', [640, 480]],
        [await animated('gif', 320, 240), 'a.gif', 'image/gif', [320, 240]],
        [await webp(1000, 1000), 'a.webp', 'image/webp', [640, 640]],
      ];
      for (const [data, name, type, dims] of cases) {
        const a = (await upload(alice, data, name).expect(201)).body.message.attachment;
        expect(a.type, name).to.equal(type);
        expect([a.thumbnail_width, a.thumbnail_height], name).to.deep.equal(dims);
        const t = await download(bob, a.thumbnail_url).expect(200);
        const meta = await sharp(t.body as Buffer).metadata();
        expect([meta.width, meta.height, meta.pages ?? 1], name).to.deep.equal([...dims, 1]);
        await download(bob, a.small_thumbnail_url).expect(200);
        expect((await download(bob, a.url).expect(200)).body.equals(data), name).to.equal(true);
      }
    });

    it('a PDF and a zip are file messages without thumbnails, downloaded as attachments, byte for byte', async function () {
      const big = Buffer.concat([pdf('quarterly numbers'), randomBytes(300_000)]);
      for (const [data, name, type] of [[big, 'report.pdf', 'application/pdf'], [zip(), 'notes.zip', 'application/zip']] as const) {
        const a = (await upload(alice, data, name).expect(201)).body.message.attachment;
        expect(a, name).to.include({ name, type, size: data.length });
        expect(a, name).to.not.have.any.keys('thumbnail_url', 'width', 'height');
        const got = await download(bob, a.url).expect(200);
        expect(got.headers['content-type']).to.equal(type);
        expect(got.headers['content-disposition']).to.match(new RegExp(`^attachment; filename="${name.replace('.', '\\.')}"`));
        expect((got.body as Buffer).equals(data), name).to.equal(true);
        await download(bob, `${a.url}/thumbnail`).expect(404);
      }
    });

    it('the stored blob is sealed: not the plaintext', async function () {
      const data = Buffer.concat([pdf('the plaintext marker 7f3a'), randomBytes(100_000)]);
      const a = (await upload(alice, data, 'secret.pdf').expect(201)).body.message.attachment;
      const found = await new Attachments(stack.db).forMember(a.id, (await stack.db.query<{ id: number }>('SELECT id FROM users WHERE name = $1', [alice.name]))[0]!.id);
      const raw = await readAll(await stack.nodes[0]!.deps.blobs.get(found!.attachment.blobKey));
      expect(raw.length).to.be.greaterThan(data.length); // header and tags
      expect(raw.includes(Buffer.from('the plaintext marker 7f3a'))).to.equal(false);
      expect(raw.includes(data.subarray(50_000, 50_064))).to.equal(false);
    });

    it('serves Range requests (206), refuses one past the end (416), and answers 304 to a known ETag', async function () {
      const data = randomBytes(200_000);
      const a = (await upload(alice, data, 'blob.bin').expect(201)).body.message.attachment;
      const part = await download(bob, a.url).set('Range', 'bytes=65530-131080').expect(206);
      expect(part.headers['content-range']).to.equal(`bytes 65530-131080/${data.length}`);
      expect((part.body as Buffer).equals(data.subarray(65530, 131081))).to.equal(true);
      const tail = await download(bob, a.url).set('Range', 'bytes=-10').expect(206);
      expect((tail.body as Buffer).equals(data.subarray(data.length - 10))).to.equal(true);
      const past = await download(bob, a.url).set('Range', `bytes=${data.length}-`).expect(416);
      expect(past.headers['content-range']).to.equal(`bytes */${data.length}`);
      const full = await download(bob, a.url).expect(200);
      const etag = full.headers['etag'] as string;
      expect(etag).to.be.a('string');
      await download(bob, a.url).set('If-None-Match', etag).expect(304);
      await download(bob, a.url).set('If-None-Match', `"another", W/${etag}`).expect(304); // a list, a weak match
      await download(bob, a.url).set('If-None-Match', etag).set('Cache-Control', 'no-cache').expect(200); // a forced reload
      const stale = await download(bob, a.url).set('Range', 'bytes=0-9').set('If-Range', '"something-else"').expect(200);
      expect((stale.body as Buffer).equals(data)).to.equal(true);
    });

    it('an HTML page, even named .png and sent as image/png, is served as a download that cannot run', async function () {
      const html = Buffer.from('<!doctype html><html><body><script>alert(document.cookie)</script></body></html>');
      for (const [name, type] of [['page.html', 'text/html'], ['x.png', 'image/png']] as const) {
        const a = (await upload(alice, html, name, type).expect(201)).body.message.attachment;
        expect(a.type, name).to.equal('application/octet-stream');
        expect(a.thumbnail_url, name).to.equal(undefined);
        const got = await download(bob, a.url).expect(200);
        expect(got.headers['content-type']).to.equal('application/octet-stream');
        expect(got.headers['content-disposition']).to.match(/^attachment;/);
        expect(got.headers['x-content-type-options']).to.equal('nosniff');
        expect(got.headers['content-security-policy']).to.equal("default-src 'none'; sandbox");
      }
    });

    it('an empty file is refused (400) and leaves nothing stored', async function () {
      const before = await blobCount();
      const res = await upload(alice, Buffer.alloc(0), 'empty.txt').expect(400);
      expect(res.body.error.code).to.equal('empty_file');
      expect(await blobCount()).to.equal(before);
    });

    it('a truncated JPEG is kept as a file without thumbnail; garbage behind a PNG signature too', async function () {
      const photo = await sidewaysJpegWithGps(1200, 800);
      const cut = photo.subarray(0, Math.floor(photo.length * 0.6));
      const a = (await upload(alice, cut, 'cut.jpg').expect(201)).body.message.attachment;
      expect(a).to.include({ type: 'image/jpeg', size: cut.length });
      expect(a.thumbnail_url).to.equal(undefined);
      expect((await download(bob, a.url).expect(200)).body.equals(cut)).to.equal(true);
      const fake = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('not a png at all '.repeat(40))]);
      const b = (await upload(alice, fake, 'fake.png').expect(201)).body.message.attachment;
      expect(b.thumbnail_url).to.equal(undefined);
    });

    it('a 16000×16000 PNG bomb is refused at once (422), memory flat, nothing stored', async function () {
      const bomb = await pngBomb(16000);
      const before = await blobCount();
      const rss = process.memoryUsage().rss;
      const t0 = performance.now();
      const res = await upload(alice, bomb, 'bomb.png').expect(422);
      const ms = performance.now() - t0;
      expect(res.body.error.code).to.equal('image_too_large');
      expect(ms, 'milliseconds, not a decode').to.be.lessThan(1000);
      expect(process.memoryUsage().rss - rss, 'no 256 MB decode').to.be.lessThan(100 * 1024 * 1024);
      expect(await blobCount()).to.equal(before);
    });

    it('an upload over the size limit is refused (413), with no blob and no partial file left', async function () {
      const before = await blobCount();
      // Just over the limit: caught while streaming. Far over: refused from Content-Length before reading.
      for (const size of [UPLOAD_LIMIT + 1, UPLOAD_LIMIT + 2_000_000]) {
        const res = await upload(alice, randomBytes(size), 'big.bin').expect(413);
        expect(res.body.error.code, String(size)).to.equal('too_large');
      }
      const exact = await upload(alice, randomBytes(UPLOAD_LIMIT), 'exact.bin').expect(201);
      expect(exact.body.message.attachment.size).to.equal(UPLOAD_LIMIT);
      expect(await blobCount()).to.equal(before + 1);
      expect(await tempFiles()).to.equal(0);
    });

    it('a client that goes away half-way through an upload leaves no blob and no partial file', async function () {
      const before = await blobCount();
      const boundary = 'parleyboundary';
      const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="half.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
      const declared = head.length + 1_000_000 + `\r\n--${boundary}--\r\n`.length;
      await new Promise<void>((resolve) => {
        const req = http.request(`${url}/api/conversations/${conv}/files`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${alice.token}`, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': declared },
        });
        req.on('error', () => resolve());
        req.on('response', (res) => (res.resume(), resolve()));
        req.write(head);
        req.write(randomBytes(300_000), () => setTimeout(() => req.destroy(), 100));
      });
      // The node notices the close, removes what it wrote: poll briefly (bounded) for that.
      for (let i = 0; i < 50 && ((await blobCount()) !== before || (await tempFiles()) !== 0); i++) await new Promise((r) => setTimeout(r, 50));
      expect(await blobCount()).to.equal(before);
      expect(await tempFiles()).to.equal(0);
      await supertest(url).get('/healthz').expect(200);
    });

    it('a file whose blob went missing answers 404, not 500', async function () {
      const a = (await upload(alice, pdf(), 'gone.pdf').expect(201)).body.message.attachment;
      const row = (await stack.db.query<{ blob_key: string }>('SELECT blob_key FROM attachments WHERE id = $1', [a.id]))[0]!;
      await stack.nodes[0]!.deps.blobs.delete(row.blob_key);
      const res = await download(bob, a.url).expect(404);
      expect(res.headers['content-type']).to.match(/json/);
    });

    it('path-traversal and header-breaking names are cleaned; the file lands under a server-made key', async function () {
      const before = await blobCount();
      const evil = [
        ['../../../etc/passwd', 'passwd'],
        ['..\\..\\windows\\win.ini', 'win.ini'],
        ['a"b\r\nX-Evil: 1.txt', 'a"bX-Evil: 1.txt'],
      ];
      for (const [raw, clean] of evil) {
        const a = (await upload(alice, Buffer.from('plain text'), raw!).expect(201)).body.message.attachment;
        expect(a.name, raw).to.equal(clean);
        const got = await download(bob, a.url).expect(200);
        expect(got.headers['x-evil']).to.equal(undefined);
        expect(got.headers['content-disposition']).to.match(/^attachment; filename="[^"]*"; filename\*=UTF-8''[^"\s]*$/);
      }
      expect(await blobCount()).to.equal(before + evil.length);
      if (!s3) expect((await readdir(path.dirname(blobDir))).includes('passwd')).to.equal(false);
    });

    it('carol, not a member, can neither upload (403, nothing stored) nor download (404, the same as no such file)', async function () {
      const before = await blobCount();
      const up = await upload(carol, Buffer.from('%PDF-1.4 intrusion'), 'x.pdf').expect(403);
      expect(up.body.error.code).to.equal('forbidden');
      expect(await blobCount()).to.equal(before);
      const a = (await upload(alice, pdf(), 'mine.pdf').expect(201)).body.message.attachment;
      const theirs = await download(carol, a.url).expect(404);
      const nothing = await download(carol, '/api/files/fNoSuchFileAtAll').expect(404);
      expect(theirs.body.toString()).to.equal(nothing.body.toString());
      await download(carol, `${a.url}/thumbnail`).expect(404);
      await download(carol, '/api/files/..%2F..%2Fetc%2Fpasswd').expect(404);
      await supertest(url).get(a.url).expect(401);
    });

    it('file URLs carry a short-lived grant instead of the token: it opens files only, of conversations its user is in (issue 11 item 10)', async function () {
      const a = (await upload(alice, pdf(), 'granted.pdf').expect(201)).body.message.attachment;
      const g = await as(url, bob).get('/api/files/grant').expect(200);
      const expires = new Date(g.body.expires_at).getTime();
      expect(expires - Date.now()).to.be.within(3_500_000, 4_300_000); // about an hour
      const grant = g.body.grant as string;
      expect(grant).to.not.contain(bob.token);
      const got = await supertest(url).get(`${a.url}?grant=${encodeURIComponent(grant)}`).buffer(true).expect(200);
      expect(got.headers['content-type']).to.equal('application/pdf');
      // the same grant is no token: the API refuses it
      await supertest(url).get(`/api/conversations?access_token=${encodeURIComponent(grant)}`).expect(401);
      // carol's grant does not open a file of a conversation she is not in
      const cg = (await as(url, carol).get('/api/files/grant').expect(200)).body.grant as string;
      await supertest(url).get(`${a.url}?grant=${encodeURIComponent(cg)}`).expect(404);
      // a forged or altered grant is refused
      const [uid, exp, sig] = grant.split('.');
      const forged = `${uid}.${Number(exp) + 600}.${sig}`;
      await supertest(url).get(`${a.url}?grant=${encodeURIComponent(forged)}`).expect(401);
      await supertest(url).get(`${a.url}?grant=nonsense`).expect(401);
    });

    it('a retried upload with the same client_id gives the same message and keeps one copy', async function () {
      const data = await webp(300, 300);
      const first = await upload(alice, data, 'retry.webp').field('client_id', 'retry-1').expect(201);
      const count = await blobCount();
      const again = await upload(alice, data, 'retry.webp').field('client_id', 'retry-1').expect(200);
      expect(again.body.message.id).to.equal(first.body.message.id);
      expect(again.body.message.attachment).to.deep.equal(first.body.message.attachment);
      expect(await blobCount()).to.equal(count);
    });

    it('says clearly what is wrong with a request that is not an upload', async function () {
      const noFile = await as(url, alice).post(`/api/conversations/${conv}/files`).field('text', 'hi').expect(400);
      expect(noFile.body.error.code).to.equal('no_file');
      const json = await as(url, alice).post(`/api/conversations/${conv}/files`).send({ text: 'hi' }).expect(415);
      expect(json.body.error.code).to.equal('unsupported_type');
      const wrongField = await as(url, alice).post(`/api/conversations/${conv}/files`).attach('upload', Buffer.from('x'), 'x.txt').expect(400);
      expect(wrongField.body.error.code).to.equal('bad_upload');
      const two = await as(url, alice).post(`/api/conversations/${conv}/files`).attach('file', Buffer.from('x'), 'x.txt').attach('file', Buffer.from('y'), 'y.txt').expect(400);
      expect(two.body.error.code).to.equal('bad_upload');
      await upload(alice, Buffer.from('x'), 'x.txt', undefined, 'dNoSuchConversation').expect(404);
      await supertest(url).post(`/api/conversations/${conv}/files`).attach('file', Buffer.from('x'), 'x.txt').expect(401);
      const broken = await as(url, alice)
        .post(`/api/conversations/${conv}/files`)
        .set('Content-Type', 'multipart/form-data; boundary=xyz')
        .send('--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhalf a part');
      expect(broken.status).to.equal(400);
    });

    it('is unharmed after all that: healthy, and the next photo goes through', async function () {
      await supertest(url).get('/healthz').expect(200);
      await upload(alice, await sidewaysJpegWithGps(400, 300), 'fine.jpg').expect(201);
      expect(await tempFiles()).to.equal(0);
    });
  });
}

describe('upload rate limit', function () {
  this.timeout(30_000);
  let stack: Stack;
  let blobDir: string;
  before(async function () {
    blobDir = await mkdtemp(path.join(tmpdir(), 'parley-files-rl-'));
    stack = await startStack({ backend: 'embedded', env: { RATE_LIMIT: 'on', UPLOADS_PER_MINUTE: '2', BLOB_DIR: blobDir } });
  });
  after(async function () {
    await stack?.close();
    await rm(blobDir, { recursive: true, force: true });
  });

  it('the third upload in a minute gets 429 with Retry-After, and stores nothing', async function () {
    const url = stack.nodes[0]!.url;
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation.id;
    const send = () => as(url, alice).post(`/api/conversations/${conv}/files`).attach('file', pdf(), 'a.pdf');
    await send().expect(201);
    await send().expect(201);
    const res = await send().expect(429);
    expect(res.body.error.code).to.equal('rate_limited');
    expect(Number(res.headers['retry-after'])).to.be.within(1, 60);
    expect((await filesUnder(blobDir)).filter((f) => !f.includes('.tmp')).length).to.equal(2);
  });
});
