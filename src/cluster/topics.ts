/**
 * ZeroMQ topics inside the cluster. ZeroMQ matches subscriptions by prefix;
 * every topic ends in NUL, which no channel or user name may contain, so a
 * subscription to `c room1 NUL` matches `room1` exactly and never `room10`.
 */

export const enum TopicKind {
  Channel = 0x63, // 'c'
  User = 0x75, // 'u'
  Edge = 0x65, // 'e': control messages for one edge process
  All = 0x62, // 'b': control messages for every edge
}

export function topic(kind: TopicKind, name: string): Buffer {
  const len = Buffer.byteLength(name, 'utf8');
  const buf = Buffer.allocUnsafe(len + 2);
  buf[0] = kind;
  buf.write(name, 1, 'utf8');
  buf[len + 1] = 0;
  return buf;
}

/**
 * User topics are grouped in buckets: `u <2 hex digits of the user's hash>
 * <user> NUL`. An edge subscribes to the bucket's prefix (`u <bucket>`) once
 * for all its users in it, instead of once per user: a subscription per user
 * cost memory in the edge's SUB socket, every forwarder and the director's
 * XPUB, and a director round trip (the probe) per authenticated connect. The
 * price: an edge also receives the direct messages of the other users of its
 * buckets and drops them. An edge holding a few hundred users or more holds
 * most of the 256 buckets, so direct messages reach every busy edge (as in
 * socket.io's Redis adapter); channel messages still go only where listened to.
 */
export const USER_BUCKET_DIGITS = 2;
const USER_BUCKETS = 16 ** USER_BUCKET_DIGITS;

/** The user's bucket: FNV-1a of the name's UTF-16 code units, as 2 hex digits. */
export function userBucket(user: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) h = Math.imul(h ^ user.charCodeAt(i), 0x01000193);
  return ((h >>> 0) % USER_BUCKETS).toString(16).padStart(USER_BUCKET_DIGITS, '0');
}

export const channelTopic = (channel: string): Buffer => topic(TopicKind.Channel, channel);
export const userTopic = (user: string): Buffer => topic(TopicKind.User, userBucket(user) + user);
/** The prefix an edge subscribes to for all its users of one bucket. */
export const userBucketTopic = (bucket: string): Buffer => Buffer.from(`u${bucket}`, 'latin1');
export const edgeTopic = (edgeId: string): Buffer => topic(TopicKind.Edge, edgeId);
export const ALL_TOPIC: Buffer = topic(TopicKind.All, '');

export interface ParsedTopic {
  kind: TopicKind;
  /** The channel, user (without its bucket) or edge. */
  name: string;
}

export function parseTopic(buf: Buffer): ParsedTopic | undefined {
  if (buf.length < 2 || buf[buf.length - 1] !== 0) return undefined;
  const kind = buf[0] as TopicKind;
  if (kind !== TopicKind.Channel && kind !== TopicKind.User && kind !== TopicKind.Edge && kind !== TopicKind.All) {
    return undefined;
  }
  if (kind === TopicKind.User) {
    if (buf.length < USER_BUCKET_DIGITS + 2) return undefined;
    return { kind, name: buf.toString('utf8', 1 + USER_BUCKET_DIGITS, buf.length - 1) };
  }
  return { kind, name: buf.toString('utf8', 1, buf.length - 1) };
}
