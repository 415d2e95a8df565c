import { expect } from 'chai';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import supertest from 'supertest';
import { createApp } from '../../server/app.js';
import { RedisBus } from '../../server/bus/redis.js';
import { assemble, disassemble } from '../../server/deps.js';
import { PostgresDatabase } from '../../server/store/postgres.js';
import { accept, as, pollEvents, register } from '../support/client.js';
import { useStack } from '../support/stack.js';

const silent = pino({ level: 'silent' });

/** A TCP relay to a service that the test can cut (every connection dropped, new ones refused) and restore. */
class Relay {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: number) {}

  async open(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((r) => server.close(r));
  }
}

describe('outages of PostgreSQL and Redis', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'real', nodes: 1 });
  const pg = new Relay(5432);
  const redis = new Relay(6379);
  let url: string;
  let close: () => Promise<void>;

  before(async () => {
    await pg.open();
    await redis.open();
    const { config, masterKey } = suite.stack;
    const db = await PostgresDatabase.connect({ url: `postgres://postgres@127.0.0.1:${pg.port}/test`, schema: config.databaseSchema, log: silent });
    const bus = await RedisBus.connect({ url: `redis://127.0.0.1:${redis.port}`, prefix: config.redisPrefix, log: silent });
    const deps = await assemble({ ...config, nodeId: 'relayed' }, silent, db, bus, { masterKey, defaultMetrics: false });
    const server = http.createServer(createApp(deps));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await disassemble(deps);
      await bus.close();
      await db.close();
    };
  });
  after(async () => {
    await close?.();
    await pg.cut();
    await redis.cut();
  });

  it('with the database gone a send is a prompt 503 with Retry-After, never a 500; once it is back the retry lands once', async () => {
    const alice = await register(suite.url(0), 'alice');
    const bob = await register(suite.url(0), 'bob');
    const conv = (await as(suite.url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'one', client_id: 'o1' }).expect(201);

    await pg.cut();
    const started = Date.now();
    const failed = await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'two', client_id: 'o2' });
    expect(Date.now() - started).to.be.below(7000);
    expect(failed.status).to.equal(503);
    expect(failed.headers['retry-after']).to.equal('2');
    expect(failed.body.error.code).to.equal('unavailable');
    expect((await as(url, bob).get(`/api/conversations/${conv.id}/messages`)).status).to.equal(503);
    expect((await supertest(url).get('/readyz')).status).to.equal(503);
    await supertest(url).get('/healthz').expect(200); // the process is alive and answering

    await pg.open();
    let status = 0;
    for (let i = 0; i < 20 && status !== 201; i++) {
      status = (await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'two', client_id: 'o2' })).status;
      if (status !== 201) await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).to.equal(201);
    const history = await as(suite.url(0), bob).get(`/api/conversations/${conv.id}/messages`).expect(200);
    expect(history.body.messages.map((m: any) => m.text)).to.deep.equal(['one', 'two']);
  });

  it('with Redis gone a send still commits and is answered; bob gets it from his stream, on any node', async () => {
    const alice = await register(suite.url(0), 'alice');
    const bob = await register(suite.url(0), 'bob');
    const conv = (await as(suite.url(0), alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    await accept(suite.url(0), bob, conv.id); // bob shares his presence with alice: her contacts need Redis
    await pollEvents(suite.url(0), bob);
    await as(url, alice).get('/api/me').expect(200); // alice's token is known to the relayed node

    await redis.cut();
    const res = await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'while redis is down', client_id: 'r1' });
    expect(res.status).to.equal(201);
    const events = await pollEvents(suite.url(0), bob);
    expect(events.filter((e) => e.type === 'message').map((e) => e.message.text)).to.deep.equal(['while redis is down']);
    // what needs Redis (contacts' presence) fails fast with 503, not after ioredis's ten seconds of retries
    const started = Date.now();
    const contacts = await as(url, alice).get('/api/contacts');
    expect(contacts.status).to.equal(503);
    expect(Date.now() - started).to.be.below(3000);
    await redis.open();
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      status = (await as(url, alice).get('/api/contacts')).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    expect(status, 'contacts once Redis is back').to.equal(200);
  });
});
