/**
 * Shared part of the two `ws` peers: an HTTP server whose websocket clients
 * join the channel named in `?c=`, and a publisher socket (`?pub=1`) sending
 * text frames `channel|payload`. Only `deliver` differs between the peers.
 */
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

export type Deliver = (sockets: Set<WebSocket>, payload: Buffer) => void;

export function startChannelServer(deliver: Deliver): void {
  const port = Number(process.argv[2]);
  const host = process.argv[3] ?? '127.0.0.1';
  const channels = new Map<string, Set<WebSocket>>();
  const server = createServer();
  const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 1 << 20 });
  wss.on('connection', (ws, req) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('pub') === '1') {
      ws.on('message', (data: Buffer) => {
        const bar = data.indexOf(0x7c); // '|'
        if (bar <= 0) return;
        const set = channels.get(data.toString('latin1', 0, bar));
        if (set) deliver(set, data.subarray(bar + 1));
      });
      return;
    }
    const names = (url.searchParams.get('c') ?? '').split(',');
    for (const name of names) {
      let set = channels.get(name);
      if (!set) channels.set(name, (set = new Set()));
      set.add(ws);
    }
    ws.on('close', () => {
      for (const name of names) {
        const set = channels.get(name);
        set?.delete(ws);
        if (set?.size === 0) channels.delete(name);
      }
    });
    ws.send('ok');
  });
  server.listen(port, host, () => console.log('ready'));
  process.on('SIGTERM', () => process.exit(0));
}
