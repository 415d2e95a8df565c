import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { sleep } from './sleep.js';

/**
 * Parley nodes as child processes of the benchmark: start, wait until ready, read their memory
 * and CPU from /proc, and stop them (SIGTERM first, so --cpu-prof gets to write its profile).
 */

/** How to run the server: TypeScript through tsx, or the compiled dist/ (npm run build). */
export type ServerMode = 'tsx' | 'dist';

/** What a node needs to start. */
export type NodeSpec = {
  id: string;
  root: string;
  mode: ServerMode;
  env: Record<string, string>;
  /** Extra flags for node (e.g. --max-semi-space-size=1 to keep young-generation garbage out of RSS readings). */
  nodeFlags?: string[];
  /** Directory for --cpu-prof output, or undefined for no profile. */
  profileDir?: string;
  logFile: string;
};

/** A running node. */
export type RunningNode = {
  id: string;
  port: number;
  child: ChildProcess;
  logFile: string;
  exited: Promise<number | null>;
};

/** A free TCP port on loopback (asked of the kernel; the small race before the node binds it is accepted). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Start one node; its stdout and stderr go to spec.logFile. */
export function startNode(spec: NodeSpec, port: number): RunningNode {
  const args: string[] = [...(spec.nodeFlags ?? [])];
  if (spec.profileDir) args.push('--cpu-prof', '--cpu-prof-dir', spec.profileDir);
  if (spec.mode === 'tsx') args.push('--import', 'tsx', path.join(spec.root, 'server/main.ts'));
  else args.push(path.join(spec.root, 'dist/server/main.js'));
  const child = spawn(process.execPath, args, {
    cwd: spec.root,
    env: { ...process.env, ...spec.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(spec.logFile);
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { id: spec.id, port, child, logFile: spec.logFile, exited };
}

/** Poll GET /readyz until it answers 200, the node exits, or `timeoutMs` passes. */
export async function waitReady(node: RunningNode, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  let dead = false;
  void node.exited.then(() => (dead = true));
  while (Date.now() < deadline) {
    if (dead) throw new Error(`node ${node.id} exited before it was ready (see ${node.logFile})`);
    last = await new Promise<string>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: node.port, path: '/readyz', timeout: 1000 }, (res) => {
        res.resume();
        res.on('end', () => resolve(String(res.statusCode)));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve(e.message));
    });
    if (last === '200') return;
    // 100 ms: a node starts in about a second; polling faster only burns the CPU it needs.
    await sleep(100);
  }
  throw new Error(`node ${node.id} not ready after ${timeoutMs} ms (last: ${last}; see ${node.logFile})`);
}

/**
 * Stop a node: SIGTERM (the server answers its parked requests and exits, writing its CPU profile),
 * then SIGKILL if it has not exited after `graceMs`.
 */
export async function stopNode(node: RunningNode, graceMs: number): Promise<void> {
  if (node.child.exitCode !== null || node.child.signalCode !== null) return;
  node.child.kill('SIGTERM');
  const timer = new Promise<'late'>((r) => setTimeout(() => r('late'), graceMs).unref());
  if ((await Promise.race([node.exited, timer])) === 'late') {
    node.child.kill('SIGKILL');
    await node.exited;
  }
}

/** Resident set size of a process in bytes, from /proc/PID/status (VmRSS). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Clock ticks per second for /proc times (USER_HZ; 100 on every Linux we run on). */
const USER_HZ = 100;

/** CPU time (user + system, ms) a process has used so far, from /proc/PID/stat. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after the closing paren are fixed.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  return ((utime + stime) * 1000) / USER_HZ;
}

/**
 * CPU time (ms) used so far by every process whose command name is one of `names` (e.g. postgres,
 * redis-server), to show how busy the services were. Processes that vanish mid-read are skipped.
 */
export function cpuMsByName(names: string[]): Record<string, number> {
  const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return out;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const name = names.find((n) => comm === n || comm.startsWith(n));
      if (name) out[name]! += cpuMs(Number(pid));
    } catch {
      // gone between readdir and read
    }
  }
  return out;
}

/** Whole-machine CPU counters from /proc/stat (ticks): busy and total, to compute utilisation. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

