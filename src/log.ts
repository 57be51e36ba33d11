/** pino JSON logs; components and connections get child loggers. */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/resolve.js';

export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...bindings }, timestamp: pino.stdTimeFunctions.isoTime });
}
