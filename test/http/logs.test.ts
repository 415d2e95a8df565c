import { expect } from 'chai';
import express from 'express';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorHandler } from '../../server/http/errors.js';
import { createLogger } from '../../server/log.js';

/** Issue 11 item 10: logs carry no query strings, tokens or BOSH sids. */
describe('what the logs keep out', () => {
  const capture = () => {
    const lines: string[] = [];
    return { lines, log: createLogger('info', { write: (s: string) => void lines.push(s) }) };
  };

  it('sids and tokens are redacted wherever a module logs them', () => {
    const { lines, log } = capture();
    log.warn({ sid: 'Secret-Sid-123', session: { sid: 'Other-Sid-456' }, token: 'tok-789' }, 'flush failed');
    expect(lines.join('')).to.not.match(/Secret-Sid-123|Other-Sid-456|tok-789/);
    expect(lines.join('')).to.contain('[redacted]');
  });

  it('an error after the headers went out is logged with the path, not the query string and its access_token', async () => {
    const { lines, log } = capture();
    const app = express();
    app.get('/api/files/:id', (_req, res, next) => {
      res.writeHead(200);
      res.write('partial');
      next(new Error('blob stream broke'));
    });
    app.use(errorHandler(log));
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      await fetch(`http://127.0.0.1:${port}/api/files/f1?access_token=very-secret-token`).then((r) => r.text()).catch(() => undefined);
      const out = lines.join('');
      expect(out).to.contain('/api/files/f1');
      expect(out).to.not.contain('very-secret-token');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
