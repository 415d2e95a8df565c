import http from 'node:http';

/**
 * A small JSON client over node:http for the load generator. The load process shares two cores
 * with two nodes, PostgreSQL and Redis, so it uses raw http with keep-alive agents and no
 * client library: every microsecond it spends is one the servers do not get.
 */

/** What a request answered: the status, the parsed JSON body (undefined when not JSON), and Retry-After in seconds when given. */
export type JsonResponse = { status: number; body: any; retryAfter?: number };

/** Options for one request. */
export type RequestOptions = {
  method?: 'GET' | 'POST';
  token?: string;
  body?: unknown;
  /** Give up after this long (ms); the promise rejects with code ETIMEDOUT. */
  timeoutMs: number;
};

/** One Parley node as seen by the client: its base address and a keep-alive agent sized for the run. */
export class NodeClient {
  readonly agent: http.Agent;

  /** `sockets`: how many connections may be open at once (at least one per parked poll plus the senders). */
  constructor(
    readonly host: string,
    readonly port: number,
    sockets: number,
  ) {
    // maxFreeSockets as large as maxSockets: the default 256 would close (and later reopen)
    // most of the 1,000 poll connections each time their answers come back together.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets, scheduling: 'lifo' });
  }

  /** Send one request and parse its JSON answer; rejects on network errors and timeouts only. */
  request(path: string, opts: RequestOptions): Promise<JsonResponse> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { accept: 'application/json' };
      let payload: Buffer | undefined;
      if (opts.token) headers.authorization = `Bearer ${opts.token}`;
      if (opts.body !== undefined) {
        payload = Buffer.from(JSON.stringify(opts.body));
        headers['content-type'] = 'application/json';
        headers['content-length'] = payload.length;
      }
      const req = http.request(
        { host: this.host, port: this.port, path, method: opts.method ?? (payload ? 'POST' : 'GET'), headers, agent: this.agent },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', fail);
          res.on('end', () => {
            clearTimeout(timer);
            const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
            let body: any;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              body = { unparsed: text.slice(0, 200) };
            }
            const retryAfter = Number(res.headers['retry-after']);
            resolve({ status: res.statusCode ?? 0, body, ...(Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfter } : {}) });
          });
        },
      );
      const timer = setTimeout(() => {
        const err = Object.assign(new Error(`timeout after ${opts.timeoutMs} ms: ${path}`), { code: 'ETIMEDOUT' });
        req.destroy(err);
      }, opts.timeoutMs);
      function fail(err: Error): void {
        clearTimeout(timer);
        reject(err);
      }
      req.on('error', fail);
      req.end(payload);
    });
  }

  /** Close every idle and active connection (outstanding requests fail with ECONNRESET-like errors). */
  close(): void {
    this.agent.destroy();
  }
}

/** Whether a network error is the keep-alive race (the server closed an idle socket as we reused it): safe to retry. */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ECONNREFUSED' || code === 'ETIMEDOUT';
}
