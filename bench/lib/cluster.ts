import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './nodes.js';
import { sleep } from './sleep.js';

/**
 * Services of one's own for the chaos run, every one on a free loopback port with its data, pid
 * and log files in the run's temp dir: a PostgreSQL instance (initdb + pg_ctl), a redis-server
 * and nginx. Each can be stopped and started again on the same port (that is the point).
 */

const NGINX = process.env['NGINX_PATH'] ?? '/usr/sbin/nginx';
const REDIS_SERVER = process.env['REDIS_SERVER'] ?? '/usr/bin/redis-server';

/** The programs the run needs, with what to install when one is missing (nothing is started before this passes). */
export function missingPrograms(): string[] {
  const out: string[] = [];
  if (!existsSync(NGINX)) out.push(`nginx (${NGINX}; apt-get install nginx-light, or set NGINX_PATH)`);
  if (!existsSync(REDIS_SERVER)) out.push(`redis-server (${REDIS_SERVER}; apt-get install redis-server, or set REDIS_SERVER)`);
  try {
    pgBinDir();
  } catch (err) {
    out.push((err as Error).message);
  }
  return out;
}

/** Whether a TCP port on loopback accepts connections. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(1000);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('timeout', () => {
      s.destroy();
      resolve(false);
    });
  });
}

/** Wait until `port` accepts connections (or, with `open: false`, refuses them). */
export async function waitPort(port: number, timeoutMs: number, open = true): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await accepts(port)) !== open) {
    if (Date.now() > deadline) throw new Error(`port ${port} still ${open ? 'closed' : 'open'} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** The newest PostgreSQL server binaries (Debian puts them under /usr/lib/postgresql/<major>/bin). */
export function pgBinDir(): string {
  const fromEnv = process.env['PG_BIN'];
  if (fromEnv) return fromEnv;
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((d) => existsSync(path.join(root, d, 'bin', 'initdb'))) : [];
  majors.sort((a, b) => Number(b) - Number(a));
  if (!majors.length) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql, or set PG_BIN)');
  return path.join(root, majors[0]!, 'bin');
}

/** initdb and postgres refuse to run as root: then they run as the `postgres` user. */
function pgUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('running as root and there is no postgres user to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

/** A PostgreSQL instance of the run's own: initdb into `dir`, pg_ctl start/stop on one port. */
export class Postgres {
  readonly url: string;
  private readonly data: string;
  private readonly bin = pgBinDir();
  private readonly user = pgUser();

  private constructor(readonly dir: string, readonly port: number) {
    this.data = path.join(dir, 'data');
    this.url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  /** initdb (trust auth, UTF-8, no fsync: the run is thrown away) and start. */
  static async create(dir: string): Promise<Postgres> {
    mkdirSync(dir, { recursive: true });
    const pg = new Postgres(dir, await freePort());
    if (pg.user) {
      chmodSync(path.dirname(dir), 0o755); // the run's temp dir is root's 0700: let postgres through
      chownSync(dir, pg.user.uid, pg.user.gid);
    }
    pg.run('initdb', ['-D', pg.data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
    await pg.start();
    return pg;
  }

  private run(cmd: string, args: string[]): void {
    const r = spawnSync(path.join(this.bin, cmd), args, { cwd: this.dir, encoding: 'utf8', timeout: 60_000, ...(this.user ?? {}) });
    if (r.status !== 0) throw new Error(`${cmd} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`);
  }

  /** Start and wait until it accepts connections. */
  async start(): Promise<void> {
    const opts = [
      `-p ${this.port}`,
      `-k ${this.dir}`,
      "-c listen_addresses='127.0.0.1'",
      '-c fsync=off',
      '-c synchronous_commit=off',
      '-c full_page_writes=off',
      '-c max_connections=200',
      '-c shared_buffers=64MB',
    ].join(' ');
    this.run('pg_ctl', ['-D', this.data, '-l', path.join(this.dir, 'postgres.log'), '-o', opts, '-w', '-t', '60', 'start']);
    await waitPort(this.port, 10_000);
  }

  /** Stop: `fast` disconnects every client and shuts down cleanly, as a restart for maintenance does. */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!existsSync(path.join(this.data, 'postmaster.pid'))) return;
    this.run('pg_ctl', ['-D', this.data, '-m', mode, '-w', '-t', '30', 'stop']);
  }
}

/** How a Redis restart treats its data: `save` writes it on shutdown and loads it back; `empty` comes back with nothing. */
export type RedisRestart = 'save' | 'empty';

/** A redis-server of the run's own. */
export class RedisServer {
  private child: ChildProcess | null = null;
  readonly url: string;

  private constructor(readonly dir: string, readonly port: number, private readonly keep: RedisRestart) {
    this.url = `redis://127.0.0.1:${port}`;
  }

  static async create(dir: string, keep: RedisRestart): Promise<RedisServer> {
    mkdirSync(dir, { recursive: true });
    const r = new RedisServer(dir, await freePort(), keep);
    await r.start();
    return r;
  }

  async start(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--appendonly', 'no', '--logfile', path.join(this.dir, 'redis.log')];
    // `save`: one save point, so SIGTERM (SHUTDOWN) writes dump.rdb and the next start loads it.
    args.push('--save', this.keep === 'save' ? '3600 1' : '');
    if (this.keep === 'empty') args.push('--dbfilename', `never-${process.pid}.rdb`);
    const c = spawn(REDIS_SERVER, args, { stdio: 'ignore' });
    this.child = c;
    const failed = new Promise<never>((_, reject) => c.once('error', reject));
    await Promise.race([waitPort(this.port, 10_000), failed]);
  }

  /** SIGTERM: Redis's own shutdown (saving first in `save` mode), then wait for the exit. */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    if ((await Promise.race([exited, sleep(10_000).then(() => 'late')])) === 'late') {
      c.kill('SIGKILL');
      await exited;
    }
    this.child = null;
  }
}

/** nginx in front of the nodes: round-robin, not sticky, unbuffered, holds longer than a poll. */
export class Nginx {
  private child: ChildProcess | null = null;
  private stderr = '';
  readonly url: string;

  private constructor(readonly dir: string, readonly port: number) {
    this.url = `http://127.0.0.1:${port}`;
  }

  static async create(dir: string, upstreamPorts: number[], readTimeoutS: number): Promise<Nginx> {
    mkdirSync(dir, { recursive: true });
    const n = new Nginx(dir, await freePort());
    const servers = upstreamPorts.map((p) => `    server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n');
    // fail_timeout 2 s: a dead node is skipped for 2 s after a failure, then tried again, so a
    // restarted node gets its share back within seconds. proxy_next_upstream: a request that
    // could not reach a node (refused, reset before an answer) goes to the next one, which is
    // what a load balancer does; `non_idempotent` is left out, so a POST the node may have
    // received is not repeated by nginx: the client's retry with its client_id is the test.
    const conf = `
worker_processes 1;
${process.getuid?.() === 0 ? 'user root root; # as root, workers would drop to nobody and lose the temp dir' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  client_max_body_size 30m;
  upstream parley {
${servers}
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${n.port};
    location / {
      proxy_pass http://parley;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_buffering off;
      proxy_read_timeout ${readTimeoutS}s;
      proxy_connect_timeout 2s;
      proxy_next_upstream error timeout;
    }
  }
}
`;
    writeFileSync(path.join(dir, 'nginx.conf'), conf);
    await n.start();
    return n;
  }

  private async start(): Promise<void> {
    const bin = NGINX;
    // -e: the log before the config is read (the default path may not be writable).
    const c = spawn(bin, ['-e', 'stderr', '-p', this.dir, '-c', path.join(this.dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    c.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    c.once('error', (err) => (this.stderr += err.message));
    this.child = c;
    const deadline = Date.now() + 10_000;
    while (!(await accepts(this.port))) {
      if (c.exitCode !== null) throw new Error(`nginx exited: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`nginx did not start: ${this.stderr}`);
      await sleep(50);
    }
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    if ((await Promise.race([exited, sleep(5000).then(() => 'late')])) === 'late') {
      c.kill('SIGKILL');
      await exited;
    }
  }
}
