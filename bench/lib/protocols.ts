/**
 * How a bench subscriber speaks to each server: open, subscribe to one
 * channel, answer heartbeats, and hand every received frame's text to the
 * counter. Each protocol resolves `ready` only when the server has confirmed
 * the subscription, so publishing never starts before a subscriber listens.
 */
import WebSocket from 'ws';

/**
 * `tidings`: published over ZeroMQ with the project's Publisher; `tidings-ws`:
 * the same server, published over a client websocket (`publish` commands,
 * each acknowledged); `tidings-curve`: CURVE keys on every ZeroMQ link (the
 * cost of encryption). `ws-merged`: ws-batched plus Tidings' frame merging.
 */
export type ServerKind = 'tidings' | 'tidings-ws' | 'tidings-curve' | 'ws-naive' | 'ws-batched' | 'ws-merged' | 'socketio' | 'nats';

export const isTidings = (kind: ServerKind): boolean => kind === 'tidings' || kind === 'tidings-ws' || kind === 'tidings-curve';
const isWsPeer = (kind: ServerKind): boolean => kind === 'ws-naive' || kind === 'ws-batched' || kind === 'ws-merged';

export interface SubscriberTarget {
  kind: ServerKind;
  url: string;
  /** Channels (rooms, subjects) this subscriber joins. */
  channels: string[];
  localAddress?: string;
  /** Tidings: the subscriber's user; the generator signs its own token (grants: its channels) and connects with it. */
  user?: string;
  /** Set by the generator from `user` before opening. */
  token?: string;
}

export interface SubscriberSink {
  /** Text that may hold one or more bench payloads. */
  onText(text: string): void;
}

export function openSubscriber(t: SubscriberTarget, sink: SubscriberSink, timeoutMs: number): Promise<WebSocket> {
  const url = isWsPeer(t.kind) ? `${t.url}?c=${encodeURIComponent(t.channels.join(','))}` : t.url;
  const ws = new WebSocket(url, { perMessageDeflate: false, ...(t.localAddress ? { localAddress: t.localAddress } : {}) });
  return new Promise<WebSocket>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${t.kind} subscriber not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const ready = (): void => {
      clearTimeout(timer);
      resolve(ws);
    };
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // Refused (e.g. a bad token: error reply, then close 4001): fail now, not at the timeout. No-op once ready.
    ws.once('close', (code: number, reason: Buffer) => {
      clearTimeout(timer);
      reject(new Error(`${t.kind} subscriber closed before it was ready: ${code} ${reason.toString()}`));
    });
    const handlers: Record<ServerKind, () => void> = {
      tidings: () => tidings(ws, t.channels, t.token, sink, ready),
      'tidings-ws': () => tidings(ws, t.channels, t.token, sink, ready),
      'tidings-curve': () => tidings(ws, t.channels, t.token, sink, ready),
      'ws-naive': () => plain(ws, sink, ready),
      'ws-batched': () => plain(ws, sink, ready),
      'ws-merged': () => plain(ws, sink, ready),
      socketio: () => socketio(ws, t.channels, sink, ready),
      nats: () => nats(ws, t.channels, sink, ready),
    };
    ws.once('open', handlers[t.kind]);
  });
}

/** Native protocol: connect (with the subscriber's token, or anonymous), subscribe to each channel, then pushes; several objects per frame split by "\n". */
function tidings(ws: WebSocket, channels: string[], token: string | undefined, sink: SubscriberSink, ready: () => void): void {
  let live = false;
  let refused = false;
  let confirmed = 0;
  ws.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
    if (live) {
      if (text.includes('"type":"ping"')) ws.send('{"type":"pong"}');
      sink.onText(text);
      return;
    }
    for (const line of text.split('\n')) {
      if (line.startsWith('{"id":1,')) {
        // A refused connect (the server then closes: counted as failed to open); the subscribes behind it are answered 101.
        if (!line.includes('"result"')) refused = true;
      } else if (refused) {
        continue;
      } else if (line.startsWith('{"id":')) {
        if (!line.includes('"result"')) throw new Error(`subscribe failed: ${line}`);
        if (++confirmed === channels.length) {
          live = true;
          ready();
        }
      } else if (live) sink.onText(line);
    }
  });
  // As the SDK does (src/client/client.ts): the subscribes go in connect's frame, run once connect settles.
  const connect = JSON.stringify({ id: 1, method: 'connect', params: token === undefined ? {} : { token } });
  ws.send([connect, ...channels.map((channel, i) => JSON.stringify({ id: i + 2, method: 'subscribe', params: { channel } }))].join('\n'));
}

/** The ws peers: the channel is in the URL; the server says "ok" once the socket is in the channel. */
function plain(ws: WebSocket, sink: SubscriberSink, ready: () => void): void {
  let live = false;
  ws.on('message', (data: Buffer) => {
    if (!live) {
      live = true;
      ready();
      return;
    }
    sink.onText(data.toString('utf8'));
  });
}

/** socket.io 4 over its websocket transport: engine.io open, namespace connect, joins with acks. */
function socketio(ws: WebSocket, rooms: string[], sink: SubscriberSink, ready: () => void): void {
  let acked = 0;
  ws.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
    const c = text.charCodeAt(0);
    if (c === 0x34 /* 4 message */) {
      if (text.charCodeAt(1) === 0x32 /* 2 event */) sink.onText(text);
      else if (text.startsWith('40')) rooms.forEach((room, i) => ws.send(`42${i + 1}${JSON.stringify(['join', room])}`));
      else if (text.startsWith('43') && ++acked === rooms.length) ready();
    } else if (c === 0x32 /* 2 ping */) ws.send('3');
    else if (c === 0x30 /* 0 open */) ws.send('40');
  });
}

/**
 * NATS over websocket: the text protocol as a byte stream (a MSG may span
 * frames). SUB then PING: the PONG proves the subscription is registered.
 */
function nats(ws: WebSocket, subjects: string[], sink: SubscriberSink, ready: () => void): void {
  let buf = '';
  let live = false;
  ws.on('message', (data: Buffer) => {
    buf += data.toString('utf8');
    let pos = 0;
    for (;;) {
      const eol = buf.indexOf('\r\n', pos);
      if (eol === -1) break;
      if (buf.startsWith('MSG ', pos)) {
        const line = buf.slice(pos, eol);
        const size = Number(line.slice(line.lastIndexOf(' ') + 1));
        const end = eol + 2 + size + 2;
        if (buf.length < end) break;
        sink.onText(buf.slice(eol + 2, eol + 2 + size));
        pos = end;
        continue;
      }
      const op = buf.slice(pos, eol);
      pos = eol + 2;
      if (op === 'PING') ws.send('PONG\r\n');
      else if (op === 'PONG' && !live) {
        live = true;
        ready();
      } else if (op.startsWith('-ERR')) throw new Error(`nats: ${op}`);
    }
    buf = pos === 0 ? buf : buf.slice(pos);
  });
  const subs = subjects.map((s, i) => `SUB ${s} ${i + 1}\r\n`).join('');
  ws.send(`CONNECT {"verbose":false,"pedantic":false,"protocol":1,"echo":false}\r\n${subs}PING\r\n`);
}
