/**
 * Peer: the batched Node ceiling with the frame merging Tidings does
 * (src/edge/outbox.ts), so the comparison is like for like:
 *
 * - Messages for a socket are collected during one event-loop turn and
 *   written at the end of it, one `write` per socket (as ws-batched).
 * - Several messages for one socket in that turn go out as ONE text frame,
 *   the payloads separated by "\n" (Tidings merges consecutive pushes the same
 *   way; its clients and the bench split frames on "\n"). One message alone
 *   keeps its own frame, built once and shared by every socket.
 * - The merged frame is built once per distinct list of messages per turn and
 *   shared by every socket that has the same list (every subscriber of a
 *   channel, in the common case), as Tidings' FlushScheduler does; merged
 *   frames stay under 256 KB of payload.
 *
 * What it does not do: Tidings' 1 ms gap between flushes under load (this
 * peer flushes on every turn, as ws-batched).
 */
import * as wsModule from 'ws';
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import { startChannelServer } from './channel-server.js';

const frame = (wsModule as unknown as { Sender: { frame(data: Buffer, opts: object): Buffer[] } }).Sender.frame;
const TEXT = { fin: true, rsv1: false, opcode: 1, mask: false, readOnly: false };
const MAX_MERGED = 256 * 1024;
const NEWLINE = Buffer.from('\n');

const textFrame = (payload: Buffer): Buffer => {
  const parts = frame(payload, TEXT);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
};

/** Per socket, the payloads of this turn; per payload, its own frame (single messages). */
const pending = new Map<Socket, Buffer[]>();
const single = new Map<Buffer, Buffer>();
/** Merged frames of this turn by first payload, shared by sockets with the same list. */
const merged = new Map<Buffer, Array<{ list: Buffer[]; out: Buffer }>>();
let armed = false;

function merge(list: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  let run: Buffer[] = [];
  let bytes = 0;
  const end = (): void => {
    if (run.length === 0) return;
    const joined: Buffer[] = [];
    run.forEach((p, i) => (i > 0 ? joined.push(NEWLINE, p) : joined.push(p)));
    parts.push(textFrame(Buffer.concat(joined)));
    run = [];
    bytes = 0;
  };
  for (const p of list) {
    if (bytes + p.length + 1 > MAX_MERGED) end();
    run.push(p);
    bytes += p.length + 1;
  }
  end();
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

function framesFor(list: Buffer[]): Buffer {
  if (list.length === 1) return single.get(list[0]!)!;
  const candidates = merged.get(list[0]!);
  const same = candidates?.find((c) => c.list.length === list.length && c.list.every((p, i) => p === list[i]));
  if (same) return same.out;
  const entry = { list, out: merge(list) };
  if (candidates) candidates.push(entry);
  else merged.set(list[0]!, [entry]);
  return entry.out;
}

function flush(): void {
  armed = false;
  for (const [socket, list] of pending) if (!socket.destroyed) socket.write(framesFor(list));
  pending.clear();
  single.clear();
  merged.clear();
}

startChannelServer((sockets, payload) => {
  single.set(payload, textFrame(payload));
  for (const ws of sockets) {
    const socket = (ws as WebSocket & { _socket: Socket })._socket;
    const list = pending.get(socket);
    if (list) list.push(payload);
    else pending.set(socket, [payload]);
  }
  if (!armed) {
    armed = true;
    setImmediate(flush);
  }
});
