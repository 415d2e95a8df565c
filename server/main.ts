import { createApp } from './app.js';
import { loadConfig } from './config.js';
import { assemble, disassemble, openBus, openDatabase } from './deps.js';
import { createServer } from './http/server.js';
import { createLogger } from './log.js';

/** Shutdown must finish within 5 s (Heroku sends SIGKILL 30 s after SIGTERM; we aim well inside). */
const SHUTDOWN_MS = 5_000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  const db = await openDatabase(config, log);
  const bus = await openBus(config, log);
  const deps = await assemble(config, log, db, bus);
  const app = createApp(deps);
  const server = createServer(app, config);
  await new Promise<void>((resolve) => server.listen(config.port, resolve));
  log.info(
    { port: config.port, node: config.nodeId, database: db.kind, bus: config.redisUrl ? 'redis' : 'local' },
    `Parley listening on http://localhost:${config.port}`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: answering parked requests');
    const force = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, SHUTDOWN_MS);
    force.unref();
    deps.lot.closeAll();
    server.close();
    server.closeIdleConnections();
    try {
      await disassemble(deps);
      await new Promise((r) => setTimeout(r, 100)); // let answered requests flush
      server.closeAllConnections();
      await bus.close();
      await db.close();
    } catch (err) {
      log.error({ err }, 'error during shutdown');
    }
    clearTimeout(force);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
