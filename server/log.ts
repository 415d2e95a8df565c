import { pino, type Logger } from 'pino';

/** The root logger; modules take a child: `log.child({ module: 'parking' })`. LOG_LEVEL is read in config. */
export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid } });
}
export type { Logger };
