/**
 * How a WAMP event's Arguments and ArgumentsKw map to a Tidings channel
 * message's `data`, and back, so that every protocol shares one channel space:
 *
 * - a PUBLISH with exactly one positional argument and no keyword arguments
 *   publishes that argument as the data: `[16, r, {}, "chat", [{"text": "hi"}]]`
 *   gives data `{"text": "hi"}`;
 * - any other PUBLISH publishes the envelope `{"args": [...], "kwargs": {...}}`
 *   (no arguments at all: `{"args": [], "kwargs": {}}`);
 * - a channel message becomes an EVENT with the envelope's args and kwargs
 *   when its data is exactly such an envelope (an object with the two keys
 *   `args`, a list, and `kwargs`, a dictionary), else with the one positional
 *   argument `data`.
 *
 * A single argument that itself looks like an envelope is wrapped in one, so
 * every WAMP publish reaches WAMP subscribers with exactly the arguments it
 * had. Pure: no Node imports.
 */
import { isDict, type Dict } from './messages.js';

export interface WampPayload {
  args?: unknown[];
  kwargs?: Dict;
}

function isEnvelope(data: unknown): data is { args: unknown[]; kwargs: Dict } {
  if (!isDict(data)) return false;
  const keys = Object.keys(data);
  return keys.length === 2 && Array.isArray(data['args']) && isDict(data['kwargs']);
}

/** The channel data a WAMP PUBLISH carries. */
export function dataFromPublish(args: unknown[] | undefined, kwargs: Dict | undefined): unknown {
  const noKw = kwargs === undefined || Object.keys(kwargs).length === 0;
  if (noKw && args !== undefined && args.length === 1 && !isEnvelope(args[0])) return args[0];
  return { args: args ?? [], kwargs: kwargs ?? {} };
}

/** The EVENT arguments of a channel message's data. */
export function eventPayload(data: unknown): WampPayload {
  if (isEnvelope(data)) return { args: data.args, kwargs: data.kwargs };
  return { args: [data] };
}
