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

export const channelTopic = (channel: string): Buffer => topic(TopicKind.Channel, channel);
export const userTopic = (user: string): Buffer => topic(TopicKind.User, user);
export const edgeTopic = (edgeId: string): Buffer => topic(TopicKind.Edge, edgeId);
export const ALL_TOPIC: Buffer = topic(TopicKind.All, '');

export interface ParsedTopic {
  kind: TopicKind;
  name: string;
}

export function parseTopic(buf: Buffer): ParsedTopic | undefined {
  if (buf.length < 2 || buf[buf.length - 1] !== 0) return undefined;
  const kind = buf[0] as TopicKind;
  if (kind !== TopicKind.Channel && kind !== TopicKind.User && kind !== TopicKind.Edge && kind !== TopicKind.All) {
    return undefined;
  }
  return { kind, name: buf.toString('utf8', 1, buf.length - 1) };
}
