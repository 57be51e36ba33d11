/**
 * A TCP proxy on 127.0.0.1 that delays everything it forwards from its
 * clients to the target by `delayMs` (answers come back at once), in order.
 * Put between a node and the director's command address, it makes that
 * node's commands arrive late, so tests can show what depends on their order.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface DelayProxy {
  port: number;
  close(): Promise<void>;
}

export async function delayProxy(targetHost: string, targetPort: number, delayMs: number): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    // Same delay for every chunk: timers of one duration fire in the order they were set.
    client.on('data', (d) => setTimeout(() => upstream.writable && upstream.write(d), delayMs));
    client.on('end', () => setTimeout(() => upstream.end(), delayMs));
    upstream.on('data', (d) => client.writable && client.write(d));
    upstream.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
