/**
 * Peer: socket.io 4 with rooms, websocket transport only. Clients join a room
 * with an acknowledged `join`; the publisher emits `pub(room, payload)` and
 * the server broadcasts `m` to the room (socket.io encodes a broadcast once).
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2]);
const host = process.argv[3] ?? '127.0.0.1';
const server = createServer();
const io = new Server(server, { transports: ['websocket'], perMessageDeflate: false, httpCompression: false, maxHttpBufferSize: 1 << 20 });
io.on('connection', (socket) => {
  socket.on('join', (room: string, ack?: () => void) => {
    void socket.join(room);
    ack?.();
  });
  socket.on('pub', (room: string, payload: string) => {
    io.to(room).emit('m', payload);
  });
});
server.listen(port, host, () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
