import path from 'node:path';
import { freePort, startNode, waitReady, type RunningNode, type ServerMode } from './nodes.js';

/**
 * What the load benchmarks (load.ts, bosh.ts) do around their workload: two nodes, a and b, on one
 * database schema, Redis prefix and master key of the run's own; no node left running however the
 * run ends; the exit code of main.
 */

/** The two nodes of a run. */
export type PairSpec = {
  root: string;
  mode: ServerMode;
  databaseUrl: string;
  redisUrl: string;
  schema: string;
  prefix: string;
  masterKey: string;
  /** The log of node `id`. */
  logFile: (id: string) => string;
  profileDir?: string | undefined;
  nodeFlags?: string[];
  /** Variables of node `id` beyond the shared ones. */
  env?: (id: string) => Record<string, string>;
  readyTimeoutMs: number;
  say: (msg: string) => void;
};

/** The node ids of a pair: user i lives on node i % 2. */
export const PAIR_IDS = ['a', 'b'] as const;

/**
 * Start nodes a and b on free loopback ports. Each is added to `nodes` as soon as it is spawned,
 * so the caller's clean-up stops it even if the other never gets ready. Resolves with the ports
 * once both answer /readyz.
 */
export async function startPair(spec: PairSpec, nodes: RunningNode[]): Promise<number[]> {
  const ports = [await freePort(), await freePort()];
  spec.say(`starting nodes ${PAIR_IDS.join(', ')} (${spec.mode}) on ports ${ports.join(', ')}; schema ${spec.schema}, Redis prefix ${spec.prefix}`);
  PAIR_IDS.forEach((id, k) => {
    const env = {
      DATABASE_URL: spec.databaseUrl,
      DATABASE_SCHEMA: spec.schema,
      REDIS_URL: spec.redisUrl,
      REDIS_PREFIX: spec.prefix,
      MASTER_KEY: spec.masterKey,
      RATE_LIMIT: 'off',
      LOG_LEVEL: 'warn',
      NODE_ID: id,
      ...spec.env?.(id),
    };
    const nodeSpec = { id, root: spec.root, mode: spec.mode, env, logFile: spec.logFile(id), ...(spec.nodeFlags ? { nodeFlags: spec.nodeFlags } : {}), ...(spec.profileDir ? { profileDir: spec.profileDir } : {}) };
    nodes.push(startNode(nodeSpec, ports[k]!));
  });
  await Promise.all(nodes.map((n) => waitReady(n, spec.readyTimeoutMs)));
  spec.say(`both nodes ready (logs: ${nodes.map((n) => path.relative(spec.root, n.logFile)).join(', ')})`);
  return ports;
}

/**
 * On SIGINT and SIGTERM run `cleanup` and exit 130; and when the process exits any other way,
 * kill the nodes still running (the last resort: never leave a node behind).
 */
export function onInterrupt(nodes: RunningNode[], cleanup: () => Promise<void>, say: (msg: string) => void): void {
  const onSignal = (sig: NodeJS.Signals) => {
    say(`${sig}: stopping nodes and cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', () => {
    for (const n of nodes) if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
  });
}

/** Run a benchmark's main and exit with its code; a failure is said with its stack, exit 1. */
export function runMain(main: () => Promise<number>, say: (msg: string) => void): void {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      say(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exit(1);
    },
  );
}
