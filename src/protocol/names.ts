/**
 * Channel and user name rules, and grant matching.
 *
 * Channels: 1-200 characters from A-Z a-z 0-9 and `_ - . : @ = , / + ! ~ $`.
 * No whitespace, no `*` (reserved for grant patterns), no NUL (the cluster
 * terminates topics with NUL so ZeroMQ's prefix matching becomes exact).
 * Users: 1-200 characters, no control characters.
 */

export const MAX_NAME_LENGTH = 200;

const CHANNEL_RE = /^[A-Za-z0-9_\-.:@=,/+!~$]{1,200}$/;
// eslint-disable-next-line no-control-regex
const CONTROL_RE = /[\u0000-\u001f\u007f]/;

export function isValidChannel(name: unknown): name is string {
  return typeof name === 'string' && CHANNEL_RE.test(name);
}

export function channelProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'channel must be a string';
  if (name.length === 0) return 'channel must not be empty';
  if (name.length > MAX_NAME_LENGTH) return `channel longer than ${MAX_NAME_LENGTH} characters`;
  if (!CHANNEL_RE.test(name)) return 'channel may only contain A-Z a-z 0-9 and _ - . : @ = , / + ! ~ $';
  return undefined;
}

export function isValidUser(name: unknown): name is string {
  return (
    typeof name === 'string' && name.length > 0 && name.length <= MAX_NAME_LENGTH && !CONTROL_RE.test(name)
  );
}

/**
 * A grant is an exact channel name, a prefix pattern ending in `*`
 * (`chat.*` allows `chat.room1`, not `chat`), or `*` alone for every channel.
 */
export function grantMatches(grant: string, channel: string): boolean {
  if (grant === '*') return true;
  if (grant.endsWith('*')) {
    const prefix = grant.slice(0, -1);
    return channel.length > prefix.length && channel.startsWith(prefix);
  }
  return grant === channel;
}

export function grantsAllow(grants: readonly string[] | undefined, channel: string): boolean {
  if (!grants) return false;
  for (const g of grants) if (grantMatches(g, channel)) return true;
  return false;
}

export function isValidGrant(grant: unknown): grant is string {
  if (typeof grant !== 'string') return false;
  if (grant === '*') return true;
  const body = grant.endsWith('*') ? grant.slice(0, -1) : grant;
  return body.length > 0 && CHANNEL_RE.test(body);
}
