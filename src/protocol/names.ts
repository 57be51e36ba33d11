/**
 * Channel and user name rules, and grant matching.
 *
 * Channels: 1-200 characters from A-Z a-z 0-9 and `_ - . : @ = , / + ! ~ $`.
 * No whitespace, no `*` (reserved for grant patterns), no NUL (the cluster
 * terminates topics with NUL so ZeroMQ's prefix matching becomes exact).
 * Users: 1-200 characters, no control characters.
 *
 * Names the cluster carries are wider: what channelstream accepts (channels
 * up to 256 characters of any kind, user ids up to 512) minus the two things
 * that would break exact routing (see carriedChannelProblem). The native
 * rules above apply where a native client names a channel; the director,
 * the cluster topics and the channelstream-compatible routes take any
 * carried name.
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

/** channelstream's limits, counted in characters (Unicode code points, as Python's len). */
export const MAX_CARRIED_CHANNEL_LENGTH = 256;
export const MAX_CARRIED_USER_LENGTH = 512;

/** Length in Unicode code points (Python's len), not UTF-16 units. */
export function codePointLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

// A lone surrogate: encoded to UTF-8 it becomes U+FFFD, so two different names would share one topic.
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why a name cannot travel through the cluster, or undefined. A topic is the
 * name's UTF-8 bytes followed by NUL, so the name must not contain NUL (a
 * subscription to `a` would also match `a NUL b`) and must be well-formed
 * UTF-16 (lone surrogates would all encode to U+FFFD and share one topic).
 * Everything else (spaces, `#`, `*`, any script) is opaque to routing.
 */
function carriedProblem(what: string, name: unknown, max: number): string | undefined {
  if (typeof name !== 'string') return `${what} must be a string`;
  if (name.length === 0) return `${what} must not be empty`;
  if (codePointLength(name) > max) return `${what} longer than ${max} characters`;
  if (name.includes('\u0000')) return `${what} must not contain NUL`;
  if (LONE_SURROGATE_RE.test(name)) return `${what} must be valid Unicode (no lone surrogates)`;
  return undefined;
}

/** A channel name the cluster can carry: 1-256 characters, no NUL, valid Unicode. */
export function carriedChannelProblem(name: unknown): string | undefined {
  return carriedProblem('channel', name, MAX_CARRIED_CHANNEL_LENGTH);
}

/** A user id the cluster can carry: 1-512 characters, no NUL, valid Unicode. */
export function isCarriedUser(name: unknown): name is string {
  return carriedProblem('user', name, MAX_CARRIED_USER_LENGTH) === undefined;
}

export function carriedUserProblem(name: unknown): string | undefined {
  return carriedProblem('user', name, MAX_CARRIED_USER_LENGTH);
}

/** Order of strings by Unicode code point, as Python's sorted() (JS compares UTF-16 units). */
export function codePointCompare(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}
