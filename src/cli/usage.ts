/**
 * How the CLI reports a mistake in what it was given: one line on stderr
 * naming the option (or the setting and where its value came from), exit 2.
 * Never a stack trace or the whole help.
 */
import { ConfigError } from '../config/resolve.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function exitUsage(message: string): never {
  process.stderr.write(`tidings: ${message.split('\n')[0]}\n`);
  process.exit(2);
}

export function isUsageError(err: unknown): boolean {
  return err instanceof UsageError || err instanceof ConfigError;
}

/** Runs a command's set-up; a usage or setting error ends the program with exit 2. */
export function orUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (isUsageError(err)) exitUsage((err as Error).message);
    throw err;
  }
}

/** A whole number in [min, max] from a flag's raw text. */
export function intOption(name: string, raw: unknown, min: number, max: number): number {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/** A number of seconds in (0, max] from a flag's raw text. */
export function secondsOption(name: string, raw: unknown, max: number): number {
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  if (!Number.isFinite(n) || n <= 0 || n > max) throw new UsageError(`--${name} must be a number of seconds above 0 and at most ${max}, got ${JSON.stringify(raw)}`);
  return n;
}

/** A flag given alone (true), as --no-x (false), or with a true/false value. */
export function boolOption(name: string, raw: unknown): boolean {
  if (raw === undefined) return false;
  if (typeof raw === 'boolean') return raw;
  const v = String(raw).trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new UsageError(`--${name} must be true or false, got ${JSON.stringify(raw)}`);
}

/** A string option given once. */
export function stringOption(name: string, raw: unknown): string | undefined {
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string') throw new UsageError(`--${name} must be given once, with a value`);
  return raw;
}
