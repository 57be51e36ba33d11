/**
 * Peer: the batched Node ceiling. The websocket frame is built once per
 * message and shared by every socket; each socket's frames of one event-loop
 * turn go out in one corked write (one writev).
 */
import * as wsModule from 'ws';
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import { startChannelServer } from './channel-server.js';

const frame = (wsModule as unknown as { Sender: { frame(data: Buffer, opts: object): Buffer[] } }).Sender.frame;
const TEXT = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false };

const pending = new Map<Socket, Buffer[]>();
let armed = false;

function flush(): void {
  armed = false;
  for (const [socket, frames] of pending) {
    if (socket.destroyed) continue;
    socket.cork();
    for (const f of frames) socket.write(f);
    socket.uncork();
  }
  pending.clear();
}

startChannelServer((sockets, payload) => {
  const parts = frame(payload, TEXT);
  const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  for (const ws of sockets) {
    const socket = (ws as WebSocket & { _socket: Socket })._socket;
    const list = pending.get(socket);
    if (list) list.push(bytes);
    else pending.set(socket, [bytes]);
  }
  if (!armed) {
    armed = true;
    setImmediate(flush);
  }
});
