/**
 * pino logs; components and connections get child loggers. JSON lines by
 * default; `pretty` (pino-pretty) for people at a terminal. A child that binds
 * `component` again replaces its parent's (pino would write the key twice).
 */
import { createRequire } from 'node:module';
import { pino, type Logger } from 'pino';
import type { LogLevel } from './config/resolve.js';

export type LogFormat = 'auto' | 'json' | 'pretty';

const CHINDINGS = pino.symbols.chindingsSym as unknown as string;
const COMPONENT = /,"component":"(?:[^"\\]|\\.)*"/;

/** Keep only the last `component` binding in a child's serialized bindings. */
function dedupeComponent(log: Logger): void {
  const original = log.child as unknown as (this: Logger, bindings: Record<string, unknown>, options?: object) => Logger;
  // Children inherit this method through their prototype chain, so `this` is the logger being extended.
  const wrapped = function (this: Logger, bindings: Record<string, unknown>, options?: object): Logger {
    const c = original.call(this, bindings, options);
    if (bindings && Object.hasOwn(bindings, 'component')) {
      const record = c as unknown as Record<string, string>;
      const text = record[CHINDINGS]!;
      // The new binding is the last "component" in the string; drop any earlier one.
      const last = text.lastIndexOf(',"component":');
      const before = text.slice(0, last).replace(COMPONENT, '');
      record[CHINDINGS] = before + text.slice(last);
    }
    return c;
  };
  (log as unknown as { child: typeof wrapped }).child = wrapped;
}

/** Whether `format` means pretty output on this process' stdout. */
export function isPretty(format: LogFormat): boolean {
  return format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true);
}

export function createLogger(level: LogLevel, bindings: Record<string, unknown> = {}, format: LogFormat = 'json'): Logger {
  const options = { level, base: { ...bindings }, timestamp: pino.stdTimeFunctions.isoTime };
  // pino-pretty and its dependencies are loaded only by a process that writes for people.
  const pretty = isPretty(format) ? (createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty')) : null;
  const log: Logger = pretty
    ? (pino(options, pretty({ sync: true, colorize: process.stdout.isTTY === true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })) as unknown as Logger)
    : pino(options);
  dedupeComponent(log);
  return log;
}
