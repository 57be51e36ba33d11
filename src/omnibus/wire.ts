/**
 * django-omnibus' text protocol (see docs/migrating-from-omnibus.md), as pure
 * functions: parsing a client frame, formatting command replies, and showing a
 * channel push to an omnibus client.
 *
 * Client frames: `!<command>:<args>` (split at the first `:`), or a channel
 * message `<channel>:<JSON object>` (channel = text before the first `:`).
 * Replies: `!<command>:{"type": <command>, "success": <bool>, "payload": ..}`.
 * Pushes: `<channel>:{"type": .., "sender": .., "payload": ..}`.
 *
 * How the channel space is shared with the other protocols:
 * - a message whose data has omnibus' shape (an object with a string `type`
 *   and a `payload` key; what omnibus publishers and omnibus clients send) is
 *   shown as its data, unchanged: `<channel>:<data JSON>`;
 * - any other data (a native client's, the HTTP API's, channelstream's) is
 *   wrapped: `<channel>:{"type": "message", "sender": <the push's sender>,
 *   "payload": <data>}`;
 * - other pushes (presence events, edits, direct messages) have no omnibus
 *   form and are not shown.
 */
import { ErrorCodes, TidingsError, type ErrorBody } from '../protocol/errors.js';

export type OmnibusFrame =
  | { kind: 'command'; command: string; args: string }
  | { kind: 'message'; channel: string; json: string };

/** Longest command name echoed back in a reply. */
const MAX_COMMAND = 64;

export function parseOmnibusFrame(text: string): OmnibusFrame {
  if (text.startsWith('!')) {
    const colon = text.indexOf(':');
    const command = colon === -1 ? text.slice(1) : text.slice(1, colon);
    if (command.length === 0 || command.length > MAX_COMMAND) throw new TidingsError(ErrorCodes.BAD_FRAME, 'a command is !<name>:<args> with a name of 1-64 characters');
    return { kind: 'command', command, args: colon === -1 ? '' : text.slice(colon + 1) };
  }
  const colon = text.indexOf(':');
  if (colon <= 0) throw new TidingsError(ErrorCodes.BAD_FRAME, 'a channel message is <channel>:<json object>');
  return { kind: 'message', channel: text.slice(0, colon), json: text.slice(colon + 1) };
}

export function commandReply(command: string, success: boolean, payload: unknown): string {
  return `!${command}:${JSON.stringify({ type: command, success, payload })}`;
}

/** The payload of a failed command: omnibus' own payload (if any) with the error beside it. */
export function failurePayload(base: Record<string, unknown> | null, err: ErrorBody): Record<string, unknown> {
  return { ...(base ?? {}), error: err };
}

/** Whether published data has omnibus' message shape. */
export function isOmnibusShaped(data: unknown): data is { type: string; payload: unknown; sender?: unknown } {
  return typeof data === 'object' && data !== null && !Array.isArray(data) && typeof (data as Record<string, unknown>)['type'] === 'string' && 'payload' in data;
}

/**
 * The omnibus text of a native push (the director's JSON), or null when it
 * has no omnibus form. Called once per push, not per subscriber.
 */
export function omnibusText(pushJson: string): string | null {
  let push: Record<string, unknown>;
  try {
    push = JSON.parse(pushJson) as Record<string, unknown>;
  } catch {
    return null;
  }
  if (push['type'] !== 'message' || typeof push['channel'] !== 'string') return null;
  const data = push['data'];
  if (!isOmnibusShaped(data)) return `${push['channel']}:${JSON.stringify({ type: 'message', sender: push['sender'] ?? null, payload: data })}`;
  // The publisher's own text, as omnibus passed it on: the director writes `data` last, after keys
  // whose values are numbers or strings (which cannot hold an unescaped quote), so the first
  // `,"data":` is the key and the data's text runs to the closing brace.
  const at = pushJson.indexOf(DATA_KEY);
  return `${push['channel']}:${at === -1 ? JSON.stringify(data) : pushJson.slice(at + DATA_KEY.length, pushJson.lastIndexOf('}'))}`;
}

const DATA_KEY = ',"data":';

/**
 * The data an omnibus client's channel message publishes: its object with
 * `sender` set to the connection's identifier, whatever the client wrote
 * there (omnibus let any client write any sender).
 */
export function clientMessageData(json: string, identifier: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new TidingsError(ErrorCodes.BAD_FRAME, 'the message after <channel>: is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new TidingsError(ErrorCodes.BAD_FRAME, 'the message after <channel>: must be a JSON object');
  const o = v as Record<string, unknown>;
  if (typeof o['type'] !== 'string') throw new TidingsError(ErrorCodes.BAD_FRAME, 'the message needs a string "type"');
  const data: Record<string, unknown> = 'sender' in o ? { ...o, sender: identifier } : { type: o['type'], sender: identifier, ...o };
  // omnibus.js drops an undefined payload when it serializes; the key marks the omnibus shape.
  if (!('payload' in data)) data['payload'] = null;
  return data;
}
