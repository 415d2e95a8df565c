import { execFileSync, spawnSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../support/process.js';
import { IN_CI } from '../support/services.js';

export { freePort };

/**
 * Servers the deployment tests start for themselves on free loopback ports: a Redis with TLS,
 * a PostgreSQL with ssl=on, a PgBouncer, a Redis Cluster. Each is stopped (and its directory
 * removed) by its `stop`.
 */

/** The PostgreSQL server binaries (Debian's postgresql package), or null. */
export function postgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], 'bin') : null;
}

function onPath(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Skip the suite loudly when a program is missing; in CI fail instead (.ci/run installs them). */
export function requirePrograms(ctx: Mocha.Context, names: string[]): void {
  const missing = names.filter((n) => (n === 'postgres' ? postgresBin() === null : !onPath(n)));
  if (missing.length === 0) return;
  if (IN_CI) throw new Error(`required in CI (see .ci/run): ${missing.join(', ')}`);
  console.warn(`\n!!! SKIPPING: ${missing.join(', ')} not installed\n`);
  ctx.skip();
}

/** A self-signed CA and a server certificate it signed, for localhost and 127.0.0.1. */
export interface Certs {
  dir: string;
  ca: string;
  cert: string;
  key: string;
}

/** Make a CA and a server certificate with openssl in a new temp directory. */
export function makeCerts(): Certs {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-certs-'));
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Parley test CA', '-keyout', f('ca.key'), '-out', f('ca.crt'));
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-keyout', f('server.key'), '-out', f('server.csr'));
  writeFileSync(f('ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  ssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('server.crt'));
  chmodSync(dir, 0o755);
  for (const n of ['server.key', 'server.crt', 'ca.crt']) chmodSync(f(n), 0o644);
  return { dir, ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') };
}

/** A child process of a test, its output kept for failure messages. */
export interface Child {
  proc: ChildProcess;
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it exited. */
  stop(): Promise<void>;
}

/** Start a program; as the postgres user when we are root (initdb and postgres refuse root). */
export function run(cmd: string, args: string[], opts: { asPostgres?: boolean; cwd?: string } = {}): Child {
  const root = process.getuid?.() === 0;
  const [file, argv] = opts.asPostgres && root ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  const proc = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    proc,
    output: () => out,
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Wait until a TCP port accepts connections (or the child exits: then throw with its output). */
export async function waitPort(port: number, child: Child, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (child.proc.exitCode !== null) throw new Error(`exited early:\n${child.output()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} never opened:\n${child.output()}`);
}

/** A Redis server that speaks only TLS (its plain port off). */
export async function startTlsRedis(certs: Certs): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const child = run('redis-server', [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--tls-cert-file', certs.cert, '--tls-key-file', certs.key, '--tls-ca-cert-file', certs.ca,
    '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no',
  ]);
  await waitPort(port, child);
  return { port, stop: () => child.stop() };
}

/** A throwaway PostgreSQL cluster: trust for the postgres user, and with `ssl` only over TLS. */
export async function startPostgres(opts: { ssl?: Certs } = {}): Promise<{ port: number; stop(): Promise<void> }> {
  const bin = postgresBin();
  if (!bin) throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql');
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-pg-'));
  const data = path.join(dir, 'data');
  const root = process.getuid?.() === 0;
  if (root) {
    const { uid, gid } = postgresIds();
    chownSync(dir, uid, gid);
  }
  const init = run(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync'], { asPostgres: true });
  const code = await new Promise<number | null>((resolve) => init.proc.once('exit', resolve));
  if (code !== 0) throw new Error(`initdb failed:\n${init.output()}`);
  const conf: string[] = [`listen_addresses = '127.0.0.1'`, `port = ${port}`, `unix_socket_directories = '${dir}'`, 'fsync = off'];
  if (opts.ssl) {
    for (const n of ['server.crt', 'server.key']) {
      copyFileSync(path.join(opts.ssl.dir, n), path.join(data, n));
      chmodSync(path.join(data, n), 0o600);
      if (root) chownSync(path.join(data, n), postgresIds().uid, postgresIds().gid);
    }
    conf.push('ssl = on', `ssl_cert_file = 'server.crt'`, `ssl_key_file = 'server.key'`);
    // Only TLS connections are let in: a client that does not encrypt is refused
    writeFileSync(path.join(data, 'pg_hba.conf'), 'local all all trust\nhostssl all all 127.0.0.1/32 trust\n');
  }
  writeFileSync(path.join(data, 'postgresql.auto.conf'), conf.join('\n') + '\n');
  const server = run(path.join(bin, 'postgres'), ['-D', data], { asPostgres: true });
  await waitPort(port, server, 30_000);
  // The port opens before the server accepts sessions ("the database system is starting up")
  for (const until = Date.now() + 30_000; ; ) {
    const ready = spawnSync(path.join(bin, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(port), '-q']).status === 0;
    if (ready) break;
    if (Date.now() > until) throw new Error(`PostgreSQL on ${port} never accepted connections:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    async stop() {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function postgresIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

/**
 * PgBouncer in transaction mode (Heroku's connection pooling) in front of a PostgreSQL server:
 * database `parley` is `dbname` there. Few server connections, so transactions of different
 * clients share them as they would under load.
 */
export async function startPgbouncer(opts: { host: string; port: number; dbname: string }): Promise<{ port: number; stop(): Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-pgbouncer-'));
  const conf = path.join(dir, 'pgbouncer.ini');
  writeFileSync(path.join(dir, 'users.txt'), '"postgres" ""\n');
  writeFileSync(
    conf,
    [
      '[databases]',
      `parley = host=${opts.host} port=${opts.port} dbname=${opts.dbname} user=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'users.txt')}`,
      'pool_mode = transaction',
      'default_pool_size = 6',
      'max_client_conn = 500',
      // What Heroku's pooler ignores too; pg sends none of it unless asked
      'ignore_startup_parameters = extra_float_digits',
      'admin_users = postgres',
      '',
    ].join('\n'),
  );
  if (process.getuid?.() === 0) {
    const { uid, gid } = postgresIds();
    for (const f of [dir, conf, path.join(dir, 'users.txt')]) chownSync(f, uid, gid);
  }
  const child = run('pgbouncer', [conf], { asPostgres: true });
  await waitPort(port, child);
  return {
    port,
    async stop() {
      await child.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A Redis Cluster of three masters (no replicas) on loopback, slots spread by redis-cli. */
export async function startRedisCluster(): Promise<{ url: string; ports: number[]; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-cluster-'));
  const children: Child[] = [];
  const ports: number[] = [];
  const stop = async () => {
    await Promise.all(children.map((c) => c.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 3; i++) {
      const [port, bus] = [await freePort(), await freePort()];
      const child = run(
        'redis-server',
        ['--port', String(port), '--cluster-port', String(bus), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
          '--cluster-config-file', `nodes-${port}.conf`, '--save', '', '--appendonly', 'no', '--dir', dir],
      );
      children.push(child);
      ports.push(port);
      await waitPort(port, child);
    }
    execFileSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { stdio: 'pipe' });
    // Every node must agree the cluster is up before clients use it
    const until = Date.now() + 20_000;
    for (const p of ports) {
      while (!execFileSync('redis-cli', ['-p', String(p), 'cluster', 'info']).toString().includes('cluster_state:ok')) {
        if (Date.now() > until) throw new Error(`cluster never came up on ${p}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    return { url: `redis://127.0.0.1:${ports[0]}`, ports, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
