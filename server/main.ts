import { createApp } from './app.js';
import { deploymentWarnings, loadConfig } from './config.js';
import { answerHeld, assemble, disassemble, openBus, openDatabase } from './deps.js';
import { createServer } from './http/server.js';
import { createLogger } from './log.js';
import { DRAIN_MS, Drain } from './shutdown.js';

/** After the drain, closing pools and connections gets 3 s (Heroku's SIGKILL comes 30 s after SIGTERM). */
const CLOSE_MS = 3_000;

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error((err as Error).message);
    process.exit(2);
  }
  const log = createLogger(config.logLevel);
  for (const warning of deploymentWarnings(config)) log.warn(`!!! ${warning}`);
  const db = await openDatabase(config, log);
  const bus = await openBus(config, log);
  const deps = await assemble(config, log, db, bus);
  const app = createApp(deps);
  const server = createServer(app, config);
  const drain = new Drain(server);
  await new Promise<void>((resolve) => server.listen(config.port, resolve));
  log.info(
    { port: config.port, node: config.nodeId, database: db.kind, bus: config.redisUrl ? 'redis' : 'local' },
    `Parley listening on http://localhost:${config.port}`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, requests: drain.requests }, 'shutting down: parked requests answered, in-flight requests finishing');
    const force = setTimeout(() => {
      log.error('shutdown took too long; exiting');
      process.exit(1);
    }, DRAIN_MS + CLOSE_MS);
    force.unref();
    // Parked polls and held BOSH requests answer now, and later ones at once (they re-poll,
    // through the router, on another node); sends and uploads in flight get up to DRAIN_MS to finish
    const answered = answerHeld(deps);
    try {
      if (!(await drain.drain(DRAIN_MS))) log.warn({ requests: drain.requests }, 'requests still running after the drain; cutting them');
      await answered;
      server.closeAllConnections();
      await disassemble(deps);
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
