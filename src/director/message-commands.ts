/**
 * channelstream's `/message` answered by the director: POST publishes each
 * item to its channel (sequenced, with history) or, with `pm_users`, to those
 * users; PATCH edits and DELETE deletes, sent as unsequenced channel events.
 * The whole channelstream object travels as the message data, so
 * channelstream clients receive it unchanged (see compat/shape.ts).
 */
import { randomUUID } from 'node:crypto';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { channelProblem, isValidUser } from '../protocol/names.js';
import { csTimestamp } from '../compat/shape.js';
import type { ClusterState } from './cluster-state.js';
import { eventId } from './cluster-state.js';
import type { Body } from './body.js';

const MAX_ITEMS = 1000;
const MAX_PM_USERS = 1000;
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?$/;

/** A validation failure with channelstream's per-field messages (HTTP 422). */
export class FieldErrors extends TidingsError {
  constructor(readonly fields: Record<string, string[]>) {
    super(ErrorCodes.MISSING_FIELD, Object.entries(fields).map(([k, v]) => `${k}: ${v.join(' ')}`).join('; '));
  }
}

interface Item {
  out: Body;
  channel: string | null;
  pmUsers: string[];
}

function users(v: unknown, name: string, errs: Record<string, string[]>): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.length > MAX_PM_USERS || !v.every(isValidUser)) {
    errs[name] = [`Must be a list of at most ${MAX_PM_USERS} user names.`];
    return [];
  }
  return v as string[];
}

function validate(raw: unknown, index: number, op: 'post' | 'edit' | 'delete'): Item {
  const errs: Record<string, string[]> = {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FieldErrors({ [String(index)]: ['Must be an object.'] });
  const m = raw as Body;
  let channel: string | null = null;
  if (m['channel'] !== undefined && m['channel'] !== null) {
    const problem = channelProblem(m['channel']);
    if (problem) errs['channel'] = [problem];
    else channel = m['channel'] as string;
  }
  const pmUsers = users(m['pm_users'], 'pm_users', errs);
  const exclude = users(m['exclude_users'], 'exclude_users', errs);
  if (channel === null && pmUsers.length === 0 && !errs['channel']) errs['channel'] = ['A channel or pm_users is required.'];
  if (op === 'post' && !isValidUser(m['user'])) errs['user'] = ['Missing data for required field.'];
  if (op !== 'post' && typeof m['uuid'] !== 'string') errs['uuid'] = ['Missing data for required field.'];
  if (m['uuid'] !== undefined && m['uuid'] !== null && (typeof m['uuid'] !== 'string' || m['uuid'].length > 128)) errs['uuid'] = ['Must be a string of at most 128 characters.'];
  if (m['timestamp'] !== undefined && m['timestamp'] !== null && (typeof m['timestamp'] !== 'string' || !TIMESTAMP_RE.test(m['timestamp']))) {
    errs['timestamp'] = ['Must be YYYY-MM-DDTHH:MM:SS[.ffffff].'];
  }
  if (m['no_history'] !== undefined && typeof m['no_history'] !== 'boolean') errs['no_history'] = ['Not a valid boolean.'];
  if (Object.keys(errs).length > 0) throw new FieldErrors(Object.fromEntries(Object.entries(errs).map(([k, v]) => [`${index}.${k}`, v])));
  const now = Date.now();
  const out: Body = {
    ...m,
    uuid: typeof m['uuid'] === 'string' ? m['uuid'] : randomUUID().replace(/-/g, ''),
    timestamp: typeof m['timestamp'] === 'string' ? m['timestamp'] : csTimestamp(now),
    user: m['user'] ?? null,
    message: m['message'] ?? null,
    channel,
    pm_users: pmUsers,
    exclude_users: exclude,
    no_history: m['no_history'] === true,
    catchup: false,
    type: op === 'post' ? 'message' : op === 'edit' ? 'message:edit' : 'message:delete',
  };
  if (op === 'post') out['edited'] = null;
  if (op === 'edit') out['edited'] = csTimestamp(now);
  return { out, channel, pmUsers };
}

/** The object stored and sent: delivery-only keys dropped, exclude_users kept when used (edges filter on it). */
function payload(out: Body): Body {
  const data: Body = { ...out };
  delete data['pm_users'];
  delete data['no_history'];
  if ((data['exclude_users'] as string[]).length === 0) delete data['exclude_users'];
  return data;
}

export function registerMessageCommands(state: ClusterState): void {
  state.director.handlers.register('cs_message', (b) => {
    const op = b['op'];
    if (op !== 'post' && op !== 'edit' && op !== 'delete') throw new TidingsError(ErrorCodes.MISSING_FIELD, 'op must be post, edit or delete');
    const list = b['messages'];
    // Field errors travel as a result so their per-field messages reach the HTTP caller (422).
    if (!Array.isArray(list) || list.length > MAX_ITEMS) return { invalid: { _schema: [`Body must be a list of at most ${MAX_ITEMS} messages.`] } };
    let items: Item[];
    try {
      items = list.map((m, i) => validate(m, i, op));
    } catch (err) {
      if (err instanceof FieldErrors) return { invalid: err.fields };
      throw err;
    }
    // Sequenced in order; with the redis engine the reply waits until every message is stored.
    const pending: Promise<unknown>[] = [];
    for (const item of items) {
      const r = send(state, op, item);
      if (r) pending.push(r);
    }
    const out = { messages: items.map((i) => i.out) };
    return pending.length > 0 ? Promise.all(pending).then(() => out) : out;
  });
}

function send(state: ClusterState, op: 'post' | 'edit' | 'delete', item: Item): Promise<unknown> | void {
  const d = state.director;
  const data = payload(item.out);
  const sender = typeof item.out['user'] === 'string' ? item.out['user'] : null;
  if (item.pmUsers.length > 0) {
    // Private: to the users' connections (edges keep only those in `channel`, when one is named).
    const json = JSON.stringify(data);
    for (const u of item.pmUsers) d.publishUser(u, json, sender);
    return;
  }
  const channel = item.channel!;
  if (op === 'post') {
    const r = d.publishChannel(channel, JSON.stringify(data), sender, item.out['no_history'] === true);
    return r instanceof Promise ? r : undefined;
  }
  if (op === 'edit') editHistory(state, channel, data);
  if (op === 'delete') deleteFromHistory(state, channel, data);
  state.send(channel, null, { type: op, channel, time: Date.now(), id: eventId(), data });
}

/**
 * A delete leaves a tombstone in place of the stored message: its offset stays
 * (recovery needs consecutive offsets) but the text is gone, `deleted: true`
 * says why, and channelstream's history views skip it.
 */
function deleteFromHistory(state: ClusterState, channel: string, del: Body): void {
  const cs = state.director.channels.get(channel);
  if (!cs) return;
  for (const entry of cs.latest(cs.historyLength, Date.now())) {
    const push = JSON.parse(entry.push.toString('utf8')) as Body;
    const data = push['data'] as Body | null;
    if (!data || typeof data !== 'object' || data['uuid'] !== del['uuid']) continue;
    push['data'] = { uuid: data['uuid'], deleted: true };
    entry.push = Buffer.from(JSON.stringify(push));
    return;
  }
}

/** An edit changes the stored message too, so later history readers see the edited text. */
function editHistory(state: ClusterState, channel: string, edit: Body): void {
  const cs = state.director.channels.get(channel);
  if (!cs) return;
  for (const entry of cs.latest(cs.historyLength, Date.now())) {
    const push = JSON.parse(entry.push.toString('utf8')) as Body;
    const data = push['data'] as Body | null;
    if (!data || typeof data !== 'object' || data['uuid'] !== edit['uuid']) continue;
    push['data'] = { ...data, message: edit['message'], edited: edit['edited'] };
    entry.push = Buffer.from(JSON.stringify(push));
    return;
  }
}
