import { expect } from 'chai';
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import supertest from 'supertest';
import { as, pollEvents, register } from '../support/client.js';
import { freePort, startParley, waitReady } from '../support/process.js';
import { PG_URL, REDIS_URL, dropPrefix, dropSchema, requireServices, unique } from '../support/services.js';

/** POST a file as multipart, its bytes trickling in over `ms` (a phone on a slow link). */
function slowUpload(url: string, token: string, convId: string, bytes: number, ms: number): Promise<{ status: number; body: any }> {
  const boundary = 'parleyslowupload';
  const u = new URL(`${url}/api/conversations/${convId}/files`);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { Authorization: `Bearer ${token}`, 'Content-Type': `multipart/form-data; boundary=${boundary}` } },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : null }));
      },
    );
    req.on('error', reject);
    req.write(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\nContent-Type: text/plain\r\n\r\n`);
    const chunks = 10;
    let sent = 0;
    const timer = setInterval(() => {
      req.write('x'.repeat(bytes / chunks));
      if (++sent === chunks) {
        clearInterval(timer);
        req.end(`\r\n--${boundary}--\r\n`);
      }
    }, ms / chunks);
  });
}

describe('on a dyno', function () {
  this.timeout(90_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'parley-dyno-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses to start without DATABASE_URL, saying why, instead of keeping an embedded database on the ephemeral disk', async () => {
    const p = startParley({ DYNO: 'web.1', PORT: String(await freePort()), DATA_DIR: dir });
    expect(await p.exited).to.equal(2);
    expect(p.output()).to.contain('DATABASE_URL: required on Heroku (DYNO is set)');
  });

  describe('with Postgres and Redis', () => {
    const schema = unique('dyno_');
    const prefix = `parley-dyno-${unique('')}:`;
    before(async function () {
      await requireServices(this);
    });
    after(async () => {
      await dropSchema(schema);
      await dropPrefix(prefix);
    });

    it('warns loudly about files on the ephemeral disk without S3_BUCKET; on SIGTERM lets a slow upload finish, answers a parked poll at once, takes no new connection, exits 0', async () => {
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      const p = startParley({
        DYNO: 'web.1',
        PORT: String(port),
        DATA_DIR: dir,
        DATABASE_URL: PG_URL,
        DATABASE_SSL: 'off', // the test database has no TLS (on a dyno the default is require)
        DATABASE_SCHEMA: schema,
        REDIS_URL,
        REDIS_PREFIX: prefix,
        MASTER_KEY: '22'.repeat(32),
        RATE_LIMIT: 'off',
        LOG_LEVEL: 'info',
      });
      try {
        await waitReady(url, 60_000, p);
        expect(p.output()).to.match(/!!! S3_BUCKET is not set on Heroku: .*LOST at every restart/);
        const alice = await register(url, 'alice');
        const bob = await register(url, 'bob');
        const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
        await pollEvents(url, bob);
        const parkedAt = Date.now();
        const parked = as(url, bob).get(`/api/events?since=${bob.cursor}&wait=25`).then((r) => ({ status: r.status, at: Date.now() }));
        const upload = slowUpload(url, alice.token, conv.id, 200_000, 3000).then((r) => ({ ...r, at: Date.now() }));
        await new Promise((r) => setTimeout(r, 700)); // both in flight
        const killedAt = Date.now();
        p.child.kill('SIGTERM');
        const poll = await parked;
        expect(poll.status).to.equal(200);
        expect(poll.at - parkedAt, 'the parked poll answered at once, not after its 25 s').to.be.below(2000);
        await new Promise((r) => setTimeout(r, 200));
        const refused = await supertest(url).get('/healthz').then(
          () => 'answered',
          (err: NodeJS.ErrnoException) => `${err.code} ${err.message}`,
        );
        expect(refused, 'a draining node takes no new connection (the router sends it to another dyno)').to.match(/ECONNREFUSED/);
        const done = await upload;
        expect(done.status).to.equal(201);
        expect(done.body.message.attachment).to.include({ name: 'notes.txt', size: 200_000 });
        expect(done.at - killedAt, 'the upload ran to its end after SIGTERM').to.be.above(1500);
        expect(await p.exited).to.equal(0);
      } finally {
        p.child.kill('SIGKILL');
      }
    });
  });
});
