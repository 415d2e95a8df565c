import type http from 'node:http';

/**
 * 25 s: Heroku sends SIGKILL 30 s after SIGTERM; what is still running after 25 s is cut, leaving
 * the rest of the 30 s to close the pools and flush the log.
 */
export const DRAIN_MS = 25_000;

/** Requests in flight on a server, and a drain that lets them finish while new ones learn to go elsewhere. */
export class Drain {
  private inFlight = 0;
  private draining = false;
  private idle: Array<() => void> = [];

  constructor(private readonly server: http.Server) {
    // Before the app's own listener: the header must be set before anything answers
    server.prependListener('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      this.inFlight++;
      // A request arriving on a kept-alive socket during the drain is served, then its socket
      // closed: the client's next request opens a connection, which the router sends to another node
      if (this.draining) res.setHeader('Connection', 'close');
      res.once('close', () => {
        this.inFlight--;
        if (this.draining) server.closeIdleConnections();
        if (this.inFlight === 0) for (const f of this.idle.splice(0)) f();
      });
    });
  }

  /** Requests being served now. */
  get requests(): number {
    return this.inFlight;
  }

  /**
   * Stop accepting connections and wait until every request in flight has been answered, or
   * `ms` have passed; resolves true when all finished. Idle kept-alive sockets close at once.
   */
  async drain(ms = DRAIN_MS): Promise<boolean> {
    this.draining = true;
    this.server.close();
    this.server.closeIdleConnections();
    if (this.inFlight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      new Promise<true>((resolve) => this.idle.push(() => resolve(true))),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), ms);
      }),
    ]);
    clearTimeout(timer);
    return finished;
  }
}
