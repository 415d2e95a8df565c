import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
// @ts-expect-error xhr2 ships no types; only its constructor is used.
import XHR2 from 'xhr2';
import { projectPath } from '../../server/paths.js';
import { PASSWORD, as, register } from '../support/client.js';
import { useStack } from '../support/stack.js';

/**
 * The web client's parley.js, run in a plain script context with xhr2 as its XMLHttpRequest
 * (the browser suite needs Chromium; this needs nothing): file URLs carry a grant, not the token.
 */
function loadParley(): any {
  const sandbox: Record<string, unknown> = { XMLHttpRequest: XHR2, setTimeout, clearTimeout, Date, Math, JSON };
  vm.createContext(sandbox);
  vm.runInContext(readFileSync(projectPath('public/parley.js'), 'utf8'), sandbox);
  return sandbox['Parley'];
}

describe('parley.js file URLs (issue 11 item 10)', function () {
  this.timeout(30_000);
  const suite = useStack({ backend: 'embedded' });
  let url: string;
  before(() => {
    url = suite.url();
  });

  it('after start(), fileUrl carries a file grant that downloads the file, and never the token', async () => {
    const alice = await register(url, 'alice');
    const bob = await register(url, 'bob');
    const conv = (await as(url, alice).post('/api/conversations').send({ with: bob.name }).expect(201)).body.conversation.id;
    const sent = await as(url, alice).post(`/api/conversations/${conv}/files`).attach('file', Buffer.from('%PDF-1.4 hello'), 'hello.pdf').expect(201);
    const fileUrl = sent.body.message.attachment.url as string;

    const Parley = loadParley();
    const memory = new Map<string, string>();
    const storage = { getItem: (k: string) => memory.get(k) ?? null, setItem: (k: string, v: string) => void memory.set(k, v), removeItem: (k: string) => void memory.delete(k) };
    const client = new Parley.Client({ base: url, storage });
    await new Promise<void>((resolve, reject) => client.login(bob.name, PASSWORD, (err: unknown) => (err ? reject(err) : resolve())));
    try {
      client.start();
      for (let i = 0; i < 100 && !client._grant; i++) await new Promise((r) => setTimeout(r, 20));
      const link: string = client.fileUrl(fileUrl);
      expect(link).to.match(/[?&]grant=/);
      expect(link).to.not.contain('access_token');
      expect(link).to.not.contain(client.token);
      const res = await fetch(link);
      expect(res.status).to.equal(200);
      expect(await res.text()).to.equal('%PDF-1.4 hello');
    } finally {
      client.stop();
    }
  });
});
