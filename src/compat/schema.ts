/**
 * Just enough of marshmallow 2.18 (which channelstream 0.7.1 validates with)
 * to load channelstream's request bodies the way it does: the same fields,
 * defaults, conversions and the same validation messages, nested the same
 * way (`{"0": {"user": [..]}}` for item 0 of a list body,
 * `{"channels": {"1": [..]}}` for item 1 of a list field). Unknown keys are
 * dropped, as marshmallow 2 does. Pure: no Node imports.
 */
import { codePointLength } from '../protocol/names.js';

export type Messages = string[] | { [key: string]: Messages };
type Obj = Record<string, unknown>;

/** A validation failure with marshmallow's messages. */
export class Invalid extends Error {
  constructor(readonly messages: Messages) {
    super('validation failed');
  }
}

const MISSING = Symbol('missing');

export interface Field {
  load(value: unknown): unknown;
  required?: boolean;
  /** The value used when the key is absent; a function is called each time. It is then loaded like a given value. */
  missing?: unknown;
  /** Whether null is accepted (default: when `missing` is null). */
  allowNone?: boolean;
}

export type Schema = Readonly<Record<string, Field>>;

const REQUIRED = 'Missing data for required field.';
const NULL = 'Field may not be null.';
const INPUT_TYPE = 'Invalid input type.';

function isMapping(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Load one object with `schema` (marshmallow's Unmarshaller for many=False). */
export function load(schema: Schema, data: unknown): Obj {
  if (!isMapping(data)) throw new Invalid({ _schema: [INPUT_TYPE] });
  const out: Obj = {};
  const errors: Record<string, Messages> = {};
  for (const [name, field] of Object.entries(schema)) {
    let raw: unknown = Object.prototype.hasOwnProperty.call(data, name) ? data[name] : MISSING;
    if (raw === MISSING && field.missing !== undefined) raw = typeof field.missing === 'function' ? (field.missing as () => unknown)() : field.missing;
    if (raw === MISSING && !field.required) continue;
    try {
      out[name] = loadField(field, raw);
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      errors[name] = err.messages;
    }
  }
  if (Object.keys(errors).length > 0) throw new Invalid(errors);
  return out;
}

/** Load a list body (many=True): errors keyed by item index; an item that is not an object is a schema error. */
export function loadMany(schema: Schema, data: unknown): Obj[] {
  if (!Array.isArray(data)) throw new Invalid({ _schema: [INPUT_TYPE] });
  const out: Obj[] = [];
  const errors: Record<string, Messages> = {};
  data.forEach((item, i) => {
    if (!isMapping(item)) {
      ((errors['_schema'] ??= []) as string[]).push(INPUT_TYPE);
      return;
    }
    try {
      out.push(load(schema, item));
    } catch (err) {
      if (!(err instanceof Invalid)) throw err;
      errors[String(i)] = err.messages;
    }
  });
  if (Object.keys(errors).length > 0) throw new Invalid(errors);
  return out;
}

function loadField(field: Field, raw: unknown): unknown {
  if (raw === MISSING) throw new Invalid([REQUIRED]);
  if (raw === null) {
    if (field.allowNone ?? field.missing === null) return null;
    throw new Invalid([NULL]);
  }
  return field.load(raw);
}

// --- fields -----------------------------------------------------------------------

type Opts = Omit<Field, 'load'>;

function lengthCheck(len: number, min?: number, max?: number): void {
  if (min !== undefined && len < min) throw new Invalid([max === undefined ? `Shorter than minimum length ${min}.` : `Length must be between ${min} and ${max}.`]);
  if (max !== undefined && len > max) throw new Invalid([min === undefined ? `Longer than maximum length ${max}.` : `Length must be between ${min} and ${max}.`]);
}

/** fields.String with validate.Length(min, max), lengths in code points as Python counts them. */
export function string(opts: Opts & { min?: number; max?: number; validate?: (v: string) => void } = {}): Field {
  return {
    ...opts,
    load(v) {
      if (typeof v !== 'string') throw new Invalid(['Not a valid string.']);
      lengthCheck(codePointLength(v), opts.min, opts.max);
      opts.validate?.(v);
      return v;
    },
  };
}

const HEX_INT_RE = /^\s*([+-]?)(?:0[xX]_?)?([0-9a-fA-F](?:_?[0-9a-fA-F])*)\s*$/;

/**
 * Python's `str(uuid.UUID(text))`: "urn:" and "uuid:" removed, braces
 * stripped from both ends, dashes removed, 32 characters left that `int(_, 16)`
 * reads; the canonical lower-case 8-4-4-4-12 form, or null.
 */
export function canonicalUuid(text: unknown): string | null {
  if (typeof text !== 'string') return null;
  const hex = text.replaceAll('urn:', '').replaceAll('uuid:', '').replace(/^[{}]+|[{}]+$/g, '').replaceAll('-', '');
  if (codePointLength(hex) !== 32) return null;
  const m = HEX_INT_RE.exec(hex);
  if (!m) return null;
  const value = BigInt('0x' + m[2]!.replaceAll('_', ''));
  if (m[1] === '-' && value !== 0n) return null;
  const h = value.toString(16).padStart(32, '0');
  if (h.length > 32) return null;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** fields.UUID: the canonical string form. */
export function uuid(opts: Opts = {}): Field {
  return {
    ...opts,
    load(v) {
      const u = canonicalUuid(v);
      if (u === null) throw new Invalid(['Not a valid UUID.']);
      return u;
    },
  };
}

const TRUTHY = new Set<unknown>(['t', 'T', 'true', 'True', 'TRUE', '1', 1, true]);
const FALSY = new Set<unknown>(['f', 'F', 'false', 'False', 'FALSE', '0', 0, false]);

/** fields.Boolean: marshmallow's truthy and falsy sets (1.0 == 1 in Python, so numbers compare by value). */
export function boolean(opts: Opts = {}): Field {
  return {
    ...opts,
    load(v) {
      if (TRUTHY.has(v)) return true;
      if (FALSY.has(v)) return false;
      throw new Invalid(['Not a valid boolean.']);
    },
  };
}

const INT_TEXT_RE = /^\s*[+-]?\d(?:_?\d)*\s*$/;

/** fields.Integer: Python's int() of a number, a boolean or an integer text; validate.Range(min, max). */
export function integer(opts: Opts & { min?: number; max?: number } = {}): Field {
  return {
    ...opts,
    load(v) {
      let n: number;
      if (typeof v === 'boolean') n = v ? 1 : 0;
      else if (typeof v === 'number' && Number.isFinite(v)) n = Math.trunc(v);
      else if (typeof v === 'string' && INT_TEXT_RE.test(v)) n = Number(v.trim().replaceAll('_', ''));
      else throw new Invalid(['Not a valid integer.']);
      const { min, max } = opts;
      if (min !== undefined && n < min) throw new Invalid([max === undefined ? `Must be at least ${min}.` : `Must be between ${min} and ${max}.`]);
      if (max !== undefined && n > max) throw new Invalid([min === undefined ? `Must be at most ${max}.` : `Must be between ${min} and ${max}.`]);
      return n;
    },
  };
}

/** fields.Dict: any mapping, kept as given. */
export function mapping(opts: Opts = {}): Field {
  return {
    ...opts,
    load(v) {
      if (!isMapping(v)) throw new Invalid(['Not a valid mapping type.']);
      return v;
    },
  };
}

/** fields.List(inner) with an optional validate.Length on the list. */
export function list(inner: Field, opts: Opts & { min?: number } = {}): Field {
  return {
    ...opts,
    load(v) {
      if (!Array.isArray(v)) throw new Invalid(['Not a valid list.']);
      const out: unknown[] = [];
      const errors: Record<string, Messages> = {};
      v.forEach((item, i) => {
        try {
          out.push(loadField(inner, item));
        } catch (err) {
          if (!(err instanceof Invalid)) throw err;
          errors[String(i)] = err.messages;
        }
      });
      if (Object.keys(errors).length > 0) throw new Invalid(errors);
      if (opts.min !== undefined && out.length < opts.min) throw new Invalid([`Shorter than minimum length ${opts.min}.`]);
      return out;
    },
  };
}

/** fields.Nested(schema). */
export function nested(schema: Schema, opts: Opts = {}): Field {
  return { ...opts, load: (v) => load(schema, v) };
}

/** channelstream's BackportedDict(values=inner, keys=String()): errors as {key: {"value": [..]}}. */
export function dictOf(inner: Field, opts: Opts = {}): Field {
  return {
    ...opts,
    load(v) {
      if (!isMapping(v)) throw new Invalid(['Not a valid mapping type.']);
      const out: Obj = {};
      const errors: Record<string, Messages> = {};
      for (const [k, item] of Object.entries(v)) {
        try {
          out[k] = loadField(inner, item);
        } catch (err) {
          if (!(err instanceof Invalid)) throw err;
          errors[k] = { value: err.messages };
        }
      }
      if (Object.keys(errors).length > 0) throw new Invalid(errors);
      return out;
    },
  };
}

/** channelstream's UserStateField: a string, number, boolean or null. */
export function stateValue(): Field {
  return {
    allowNone: true,
    load(v) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
      throw new Invalid(['Value is not type of string, integer, boolean or float.']);
    },
  };
}

// --- time -------------------------------------------------------------------------------

/** marshmallow 2's ISO 8601 pattern (re.match: anchored at the start, `$` at the end). */
const ISO_RE = /^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,6})\d{0,6})?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/**
 * Python's `datetime.isoformat()` of naive UTC time `ms` (milliseconds,
 * fractional for microseconds): microseconds when not zero.
 */
export function isoformat(ms: number): string {
  const whole = Math.floor(ms);
  const micros = Math.floor((ms - whole) * 1000 + 1e-6) + (whole % 1000) * 1000;
  const d = new Date(whole);
  const base = `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return micros === 0 ? base : `${base}.${pad(micros, 6)}`;
}

/** fields.DateTime (iso): the datetime's `isoformat()`, with `+HH:MM` when a zone was given. */
export function datetime(opts: Opts = {}): Field {
  return {
    ...opts,
    load(v) {
      const m = typeof v === 'string' && v ? ISO_RE.exec(v) : null;
      if (!m) throw new Invalid(['Not a valid datetime.']);
      const [y, mo, d, h, mi, s] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
      const probe = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
      if (probe.getUTCFullYear() !== y || probe.getUTCMonth() !== mo - 1 || probe.getUTCDate() !== d || h > 23 || mi > 59 || s > 59 || y < 1) {
        throw new Invalid(['Not a valid datetime.']);
      }
      const micros = m[7] ? Number(m[7].padEnd(6, '0')) : 0;
      let text = `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${pad(h)}:${pad(mi)}:${pad(s)}${micros ? `.${pad(micros, 6)}` : ''}`;
      const tz = m[8];
      if (tz) {
        if (tz === 'Z') text += '+00:00';
        else {
          const digits = tz.slice(1).replace(':', '');
          const hh = Number(digits.slice(0, 2));
          const mm = Number(digits.slice(2) || '0');
          if (hh > 23 || mm > 59) throw new Invalid(['Not a valid datetime.']);
          text += `${tz[0]}${pad(hh)}:${pad(mm)}`;
        }
      }
      return text;
    },
  };
}
