/**
 * channelstream's user state: a free object per user, a list of public keys,
 * and the changes an update made. Only `publicState` ever reaches other
 * clients. Pure functions.
 */

export interface StateChange {
  key: string;
  value: unknown;
}

/** Structural equality of JSON values (Python's `!=` on decoded JSON). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => jsonEqual(x, bb[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ob = b as Record<string, unknown>;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(ob, k) && jsonEqual((a as Record<string, unknown>)[k], ob[k]));
}

/** Most keys one user's state may hold. */
export const MAX_STATE_KEYS = 1000;

/** Whether applying `update` keeps the state within MAX_STATE_KEYS. */
export function fitsStateLimit(state: Record<string, unknown>, update: Record<string, unknown> | null | undefined): boolean {
  if (!update) return true;
  let n = Object.keys(state).length;
  for (const k of Object.keys(update)) if (!Object.prototype.hasOwnProperty.call(state, k)) n++;
  return n <= MAX_STATE_KEYS;
}

/** Apply `update` to `state` in place (channelstream's state_from_dict); returns the keys whose value changed. */
export function applyState(state: Record<string, unknown>, update: Record<string, unknown> | null | undefined): StateChange[] {
  const changed: StateChange[] = [];
  if (!update) return changed;
  for (const [key, value] of Object.entries(update)) {
    if (!Object.prototype.hasOwnProperty.call(state, key) || !jsonEqual(state[key], value)) changed.push({ key, value });
    state[key] = value;
  }
  return changed;
}

/** The part of a state other clients may see. */
export function publicState(state: Record<string, unknown>, publicKeys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of publicKeys) if (Object.prototype.hasOwnProperty.call(state, k)) out[k] = state[k];
  return out;
}

/** The changes other clients may see. */
export function publicChanges(changes: readonly StateChange[], publicKeys: readonly string[]): StateChange[] {
  return changes.filter((c) => publicKeys.includes(c.key));
}
