import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Fields never written to the logs, wherever they appear one level down: BOSH sids and bearer
 * tokens are credentials (whoever reads a log line could resume the session). Log a tag instead
 * (bosh/session.ts sidTag); URLs are logged as paths, without their query strings.
 */
const REDACT = ['sid', '*.sid', 'token', '*.token', 'access_token', '*.access_token', 'authorization', '*.authorization', '*.headers.authorization'];

/** The root logger; modules take a child: `log.child({ module: 'parking' })`. LOG_LEVEL is read in config. */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
export type { Logger };
