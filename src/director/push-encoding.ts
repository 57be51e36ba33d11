/**
 * Builds the client-facing JSON of a push once per message; edges write these
 * bytes unchanged to every subscriber. `data` is JSON text already validated;
 * raw newlines in valid JSON can only be insignificant whitespace, so they are
 * blanked to keep the one-object-per-line batching of the protocol intact.
 */

function oneLine(json: string): string {
  return json.indexOf('\n') === -1 && json.indexOf('\r') === -1 ? json : json.replace(/[\r\n]/g, ' ');
}

/** The last channel's push head: a director sequences runs of one channel's publishes (one JSON.stringify per run). */
let lastChannel: string | null = null;
let lastHead = '';

/** The push of a channel message around its offset and epoch (the engines put `<offset>,"epoch":"<epoch>"` between). */
export function messagePushParts(channel: string, sender: string | null, time: number, dataJson: string): { head: string; tail: string } {
  if (channel !== lastChannel) {
    lastHead = `{"type":"message","channel":${JSON.stringify(channel)},"offset":`;
    lastChannel = channel;
  }
  return {
    head: lastHead,
    tail: `,"sender":${sender === null ? 'null' : JSON.stringify(sender)},"time":${time},"data":${oneLine(dataJson)}}`,
  };
}

/** Put the offset and epoch between a push's head and tail (the redis engine's Lua does the same). */
export function assemblePush(head: string, offset: number, epoch: string, tail: string): string {
  return `${head}${offset},"epoch":"${epoch}"${tail}`;
}

export function encodeMessagePush(
  channel: string,
  offset: number,
  epoch: string,
  sender: string | null,
  time: number,
  dataJson: string,
): Buffer {
  const { head, tail } = messagePushParts(channel, sender, time, dataJson);
  return Buffer.from(assemblePush(head, offset, epoch, tail), 'utf8');
}

export function encodeDirectPush(user: string, sender: string | null, time: number, dataJson: string): Buffer {
  return Buffer.from(
    `{"type":"direct","user":${JSON.stringify(user)},"sender":${
      sender === null ? 'null' : JSON.stringify(sender)
    },"time":${time},"data":${oneLine(dataJson)}}`,
    'utf8',
  );
}
