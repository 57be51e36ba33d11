/** Field checks for command bodies; every failure is a catalog error naming the field. */
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { carriedChannelProblem, carriedUserProblem } from '../protocol/names.js';

export type Body = Record<string, unknown>;

export function str(b: Body, name: string): string {
  const v = b[name];
  if (typeof v !== 'string' || v.length === 0) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a non-empty string`);
  return v;
}

export function optStr(b: Body, name: string): string | null {
  const v = b[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a string`);
  return v;
}

export function bool(b: Body, name: string, dflt: boolean): boolean {
  const v = b[name];
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'boolean') throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a boolean`);
  return v;
}

export function obj(b: Body, name: string): Body | null {
  const v = b[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object' || Array.isArray(v)) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be an object`);
  return v as Body;
}

export function channel(b: Body, name = 'channel'): string {
  const v = b[name];
  const problem = carriedChannelProblem(v);
  if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, `${name}: ${problem}`);
  return v as string;
}

export function user(b: Body, name = 'user'): string {
  const v = b[name];
  const problem = carriedUserProblem(v);
  if (problem) throw new TidingsError(ErrorCodes.INVALID_USER, `${name}: ${problem}`);
  return v as string;
}

/** A list of valid channel names, at most `max`. */
export function channelList(b: Body, name: string, max: number, required: boolean): string[] {
  const v = b[name];
  if (v === undefined || v === null) {
    if (required) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a list of channels`);
    return [];
  }
  if (!Array.isArray(v) || v.length > max) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a list of at most ${max} channels`);
  if (required && v.length === 0) throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must name at least one channel`);
  for (const c of v) {
    const problem = carriedChannelProblem(c);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, `${name}: ${problem}`);
  }
  return [...new Set(v as string[])];
}

export function stringList(b: Body, name: string, max: number): string[] | null {
  const v = b[name];
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v) || v.length > max || !v.every((x) => typeof x === 'string')) {
    throw new TidingsError(ErrorCodes.MISSING_FIELD, `${name} must be a list of at most ${max} strings`);
  }
  return v as string[];
}
