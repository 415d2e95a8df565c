import { expect } from 'chai';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import supertest from 'supertest';
import { PASSWORD } from '../support/client.js';
import { freePort, startParley, waitReady } from '../support/process.js';

describe('the parley process', function () {
  this.timeout(90_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'parley-proc-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starts on the embedded default with no services, serves the flow, and on SIGTERM answers parked polls and exits within 5 s', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const p = startParley({ PORT: String(port), DATA_DIR: dir, LOG_LEVEL: 'info' });
    try {
      await waitReady(url, 60_000, p);
      expect(p.output()).to.contain('MASTER_KEY not set');
      const page = await supertest(url).get('/').expect(200);
      expect(page.headers['content-type']).to.match(/text\/html/);
      expect(page.text).to.contain('parley.js');
      expect(existsSync(path.join(dir, 'master.key'))).to.equal(true);
      const alice = (await supertest(url).post('/api/register').send({ name: 'alice', password: PASSWORD }).expect(201)).body;
      const bob = (await supertest(url).post('/api/register').send({ name: 'bob', password: PASSWORD }).expect(201)).body;
      const conv = (await supertest(url).post('/api/conversations').set('Authorization', `Bearer ${alice.token}`).send({ with: 'bob' }).expect(201)).body
        .conversation;
      await supertest(url).post(`/api/conversations/${conv.id}/messages`).set('Authorization', `Bearer ${alice.token}`).send({ text: 'hello' }).expect(201);
      const first = await supertest(url).get('/api/events?wait=0').set('Authorization', `Bearer ${bob.token}`).expect(200);
      expect(first.body.events.map((e: any) => e.message?.text)).to.include('hello');

      const parkedAt = Date.now();
      const parked = supertest(url).get(`/api/events?since=${first.body.cursor}&wait=25`).set('Authorization', `Bearer ${bob.token}`);
      const answered = parked.then((r) => ({ status: r.status, body: r.body, at: Date.now() }));
      await new Promise((r) => setTimeout(r, 500));
      const killedAt = Date.now();
      p.child.kill('SIGTERM');
      const res = await answered;
      expect(res.status).to.equal(200);
      // Answered at once, with nothing lost: at most presence news that arrived while parked.
      expect(res.body.cursor).to.be.a('string');
      expect(res.body.events.filter((e: any) => e.type !== 'presence')).to.deep.equal([]);
      expect(res.at - parkedAt).to.be.below(5000);
      const code = await p.exited;
      expect(code).to.equal(0);
      expect(Date.now() - killedAt).to.be.below(5000);
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('keeps its data across a restart (the embedded database and master key live in DATA_DIR), and refuses a second process on it', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const p = startParley({ PORT: String(port), DATA_DIR: dir, LOG_LEVEL: 'warn' });
    try {
      await waitReady(url, 60_000, p);
      const login = await supertest(url).post('/api/login').send({ name: 'bob', password: PASSWORD }).expect(200);
      const list = await supertest(url).get('/api/conversations').set('Authorization', `Bearer ${login.body.token}`).expect(200);
      expect(list.body.conversations[0].last_message.text).to.equal('hello');
      // A second Parley on the same data directory is refused (two PGlite instances on one
      // directory overwrite each other's writes); the first keeps serving
      const second = startParley({ PORT: String(await freePort()), DATA_DIR: dir, LOG_LEVEL: 'warn' });
      expect(await second.exited).to.equal(1);
      expect(second.output()).to.contain(`is in use by process ${p.child.pid}`);
      await supertest(url).post('/api/login').send({ name: 'bob', password: PASSWORD }).expect(200);
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });

  it('refuses to start with a clear message naming each bad setting', async () => {
    const p = startParley({ PORT: 'eighty', DATABASE_URL: 'postgres://127.0.0.1/x' });
    expect(await p.exited).to.equal(2);
    expect(p.output()).to.match(/PORT/).and.to.match(/MASTER_KEY: required when DATABASE_URL is set|MASTER_KEY/);
    const q = startParley({ DATABASE_URL: 'postgres://127.0.0.1/x' });
    expect(await q.exited).to.equal(2);
    expect(q.output()).to.contain('MASTER_KEY: required when DATABASE_URL is set');
  });
});
