/**
 * Builds the client-facing JSON of a push once per message; edges write these
 * bytes unchanged to every subscriber. `data` is JSON text already validated;
 * raw newlines in valid JSON can only be insignificant whitespace, so they are
 * blanked to keep the one-object-per-line batching of the protocol intact.
 */

function oneLine(json: string): string {
  return json.indexOf('\n') === -1 && json.indexOf('\r') === -1 ? json : json.replace(/[\r\n]/g, ' ');
}

export function encodeMessagePush(
  channel: string,
  offset: number,
  epoch: string,
  sender: string | null,
  time: number,
  dataJson: string,
): Buffer {
  return Buffer.from(
    `{"type":"message","channel":${JSON.stringify(channel)},"offset":${offset},"epoch":"${epoch}","sender":${
      sender === null ? 'null' : JSON.stringify(sender)
    },"time":${time},"data":${oneLine(dataJson)}}`,
    'utf8',
  );
}

export function encodeDirectPush(user: string, sender: string | null, time: number, dataJson: string): Buffer {
  return Buffer.from(
    `{"type":"direct","user":${JSON.stringify(user)},"sender":${
      sender === null ? 'null' : JSON.stringify(sender)
    },"time":${time},"data":${oneLine(dataJson)}}`,
    'utf8',
  );
}
