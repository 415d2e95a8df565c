import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createApp } from '../../server/app.js';
import { LocalBus } from '../../server/bus/local.js';
import { loadConfig } from '../../server/config.js';
import { unwrapKey } from '../../server/core/crypto.js';
import { Keyring } from '../../server/core/keys.js';
import { rotateMasterKey } from '../../server/core/rotate.js';
import { assemble, disassemble } from '../../server/deps.js';
import { Store } from '../../server/store/store.js';
import { as, register } from '../support/client.js';
import { useStack } from '../support/stack.js';

const silent = pino({ level: 'silent' });

describe('master key rotation', function () {
  this.timeout(60_000);
  const suite = useStack({ backend: 'real', nodes: 1 });
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  /** Another node on the same database with its own master keys (what a restart with new config gives). */
  async function nodeWith(masterKey: Buffer, previousMasterKeys: Buffer[] = []): Promise<string> {
    const bus = new LocalBus({ log: silent });
    const deps = await assemble({ ...suite.stack.config, previousMasterKeys }, silent, suite.stack.db, bus, { masterKey, defaultMetrics: false });
    const server = http.createServer(createApp(deps));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await disassemble(deps);
      await bus.close();
    });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('re-wraps every conversation key; messages and files written before read back with the new key alone', async () => {
    const url = suite.url(0);
    const oldKey = suite.stack.masterKey;
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation;
    await as(url, alice).post(`/api/conversations/${conv.id}/messages`).send({ text: 'before the rotation' }).expect(201);
    const file = randomBytes(3000);
    const upload = await as(url, alice).post(`/api/conversations/${conv.id}/files`).attach('file', file, 'notes.bin').expect(201);
    const fileUrl: string = upload.body.message.attachment.url;

    const newKey = randomBytes(32);
    // During the rotation nodes run with the new key and the old one as previous: both kinds of key open
    const during = await nodeWith(newKey, [oldKey]);
    const created = (await as(during, alice).post('/api/conversations').send({ title: 'Made mid-rotation', members: [bob.name] }).expect(201)).body
      .conversation;
    expect((await as(during, bob).get(`/api/conversations/${conv.id}/messages`).expect(200)).body.messages[0].text).to.equal('before the rotation');

    const store = new Store(suite.stack.db);
    const first = await rotateMasterKey(store, new Keyring(newKey, [oldKey]), silent);
    expect(first.rewrapped).to.be.at.least(1);
    expect(first.failed).to.equal(0);
    expect(first.checked).to.be.above(first.rewrapped); // the mid-rotation group was already under the new key
    expect((await rotateMasterKey(store, new Keyring(newKey, [oldKey]), silent)).rewrapped).to.equal(0);

    const [row] = await suite.stack.db.query<{ wrapped_key: Buffer }>('SELECT wrapped_key FROM conversations WHERE id = $1', [conv.id]);
    const wrapped = Buffer.from(row!.wrapped_key);
    expect(() => unwrapKey(oldKey, wrapped, conv.id)).to.throw();
    expect(unwrapKey(newKey, wrapped, conv.id)).to.have.length(32);

    // After: the old key is gone from the configuration
    const after = await nodeWith(newKey);
    const history = await as(after, bob).get(`/api/conversations/${conv.id}/messages`).expect(200);
    expect(history.body.messages.map((m: any) => m.text)).to.deep.equal(['before the rotation', '']);
    const download = await as(after, bob).get(fileUrl).buffer(true).parse((res, cb) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => cb(null, Buffer.concat(parts)));
    });
    expect(download.status).to.equal(200);
    expect(Buffer.compare(download.body as Buffer, file)).to.equal(0);
    await as(after, alice).post(`/api/conversations/${created.id}/messages`).send({ text: 'after' }).expect(201);
  });

  it('a key that opens with neither master key is refused with a message saying so, and MASTER_KEY_PREVIOUS is validated', () => {
    const keys = new Keyring(randomBytes(32), [randomBytes(32)]);
    const stranger = new Keyring(randomBytes(32)).create('c1').wrapped;
    expect(() => keys.key('c1', stranger)).to.throw(/neither MASTER_KEY nor MASTER_KEY_PREVIOUS/);
    expect(() => loadConfig({ MASTER_KEY_PREVIOUS: `${randomBytes(32).toString('hex')},nope` })).to.throw(/MASTER_KEY_PREVIOUS: key 2/);
    expect(loadConfig({ MASTER_KEY_PREVIOUS: ` ${'ab'.repeat(32)} ` }).previousMasterKeys).to.have.length(1);
  });
});
