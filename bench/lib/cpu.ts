import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { cpuMs, cpuMsByName, machineCpu, type RunningNode } from './nodes.js';
import { round, sumOf } from './stats.js';

/**
 * Where the load benchmark's CPU went: snapshots of /proc counters at the edges of the measured
 * window, and the use between them as % of one core for each part.
 */

/** CPU counters at one moment: this process, the nodes, the services, this run's Postgres backends, the machine. */
export type Snapshot = {
  at: number;
  self: NodeJS.CpuUsage;
  nodes: number[];
  services: Record<string, number>;
  /** CPU ms of each Postgres backend serving this run's nodes (other people's tests use the same server). */
  backends: Map<number, number>;
  machine: { busy: number; total: number };
};

/** Read every CPU counter now. */
export function snapshot(nodes: RunningNode[], backendPids: number[]): Snapshot {
  const backends = new Map<number, number>();
  for (const pid of backendPids) {
    try {
      backends.set(pid, cpuMs(pid));
    } catch {
      // the backend ended between the query and the read
    }
  }
  return {
    at: performance.now(),
    self: process.cpuUsage(),
    nodes: nodes.map((n) => cpuMs(n.child.pid!)),
    services: cpuMsByName(['postgres', 'redis-server']),
    backends,
    machine: machineCpu(),
  };
}

/** CPU use between two snapshots, as % of one core (the machine figure as % of all cores). */
export function cpuBetween(a: Snapshot, b: Snapshot, nodeIds: string[]) {
  const wall = b.at - a.at;
  const pct = (msUsed: number) => round((100 * msUsed) / wall, 0);
  const selfMs = (b.self.user + b.self.system - a.self.user - a.self.system) / 1000;
  const machineBusyPct = (100 * (b.machine.busy - a.machine.busy)) / Math.max(1, b.machine.total - a.machine.total);
  const known = selfMs + sumOf(b.nodes.map((x, i) => x - a.nodes[i]!)) + sumOf(Object.keys(b.services).map((k) => b.services[k]! - (a.services[k] ?? 0)));
  // A backend first seen at the end was opened during the window: all its CPU counts.
  const backendsMs = sumOf([...b.backends].map(([pid, v]) => v - (a.backends.get(pid) ?? 0)));
  return {
    wallMs: round(wall, 0),
    loadProcessPct: pct(selfMs),
    /** Everything else on the machine (other people's builds and tests): if large, the figures are disturbed. */
    othersPct: Math.max(0, round(machineBusyPct * os.cpus().length - (100 * known) / wall, 0)),
    nodesPct: Object.fromEntries(nodeIds.map((id, i) => [id, pct(b.nodes[i]! - a.nodes[i]!)])),
    servicesPct: Object.fromEntries(Object.keys(b.services).map((k) => [k, pct(b.services[k]! - (a.services[k] ?? 0))])),
    runBackendsPct: pct(backendsMs),
    /** CPU ms spent per message delivered in the window; filled in by the caller. */
    msPerMessage: {} as Record<string, number>,
    machineBusyPct: round(machineBusyPct, 0),
    cores: os.cpus().length,
  };
}
