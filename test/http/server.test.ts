import { expect } from 'chai';
import net from 'node:net';
import { startStack, type Stack } from '../support/stack.js';

/** Open a raw connection and report when the server closes it (or null if it stays open for ms). */
function closedWithin(url: string, send: string, ms: number): Promise<{ socket: net.Socket; closedAfter: number | null }> {
  const { port } = new URL(url);
  return new Promise((resolve) => {
    const t0 = Date.now();
    const socket = net.connect(Number(port), '127.0.0.1', () => send && socket.write(send));
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    const timer = setTimeout(() => resolve({ socket, closedAfter: null }), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ socket, closedAfter: Date.now() - t0 });
    });
  });
}

/** Issue 11 item 10: the long body timeout only for uploads, and a connection cap. */
describe('HTTP server limits', function () {
  this.timeout(30_000);
  let stack: Stack;
  let url: string;
  before(async () => {
    stack = await startStack({ backend: 'embedded', env: { BODY_TIMEOUT: '1', MAX_CONNECTIONS: '3' } });
    url = stack.nodes[0]!.url;
  });
  after(async () => stack?.close());

  it('a JSON body still arriving after BODY_TIMEOUT is cut; an upload body may take longer', async () => {
    const partial = (path: string, type: string) =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nContent-Length: 1000\r\nAuthorization: Bearer x\r\n\r\n{"na`;
    const [slowLogin, slowUpload] = await Promise.all([
      closedWithin(url, partial('/api/login', 'application/json'), 4_000),
      closedWithin(url, partial('/api/conversations/g1/files', 'multipart/form-data; boundary=x'), 2_500),
    ]);
    expect(slowLogin.closedAfter).to.be.a('number').within(900, 3_000);
    expect(slowUpload.closedAfter).to.equal(null);
    slowUpload.socket.destroy();
    slowLogin.socket.destroy();
  });

  it('past MAX_CONNECTIONS a new connection is refused at once; the open ones carry on', async () => {
    const open = await Promise.all([1, 2, 3].map(() => closedWithin(url, '', 300)));
    expect(open.map((o) => o.closedAfter)).to.deep.equal([null, null, null]);
    const extra = await closedWithin(url, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 2_000);
    expect(extra.closedAfter).to.be.a('number');
    for (const o of open) o.socket.destroy();
    extra.socket.destroy();
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`${url}/healthz`);
    expect(res.status).to.equal(200);
  });
});
