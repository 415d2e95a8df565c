import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import supertest from 'supertest';
import { sleep } from './sleep.js';

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** A Parley process of a test, its output kept. */
export interface ParleyProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/**
 * Start Parley as its own process with only the given environment (no services unless given):
 * `server/main.ts` through tsx, or `script` (a built file) with plain node, in `cwd`.
 */
export function startParley(env: Record<string, string>, opts: { script?: string; cwd?: string } = {}): ParleyProcess {
  const clean: Record<string, string> = { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env };
  const args = opts.script ? [opts.script] : ['--import', 'tsx', 'server/main.ts'];
  const child = spawn(process.execPath, args, { env: clean, stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

/** Wait until /readyz answers 200; throws with the process's output when it does not in time. */
export async function waitReady(url: string, ms: number, p: ParleyProcess): Promise<void> {
  const until = Date.now() + ms;
  let exited = false;
  void p.exited.then(() => (exited = true));
  while (Date.now() < until && !exited) {
    try {
      const res = await supertest(url).get('/readyz');
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await sleep(200);
  }
  throw new Error(`Parley did not become ready; its output:\n${p.output()}`);
}
