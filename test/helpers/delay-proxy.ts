/**
 * A TCP proxy on 127.0.0.1 in front of a target address, for tests that need
 * to control one link of a cluster:
 * - everything its clients send is forwarded `delayMs` late, in order (answers
 *   come back at once): put before the director's command address, it makes
 *   one node's commands arrive late;
 * - `hold()` refuses new connections until `release()` (existing ones are left
 *   alone): after the director is killed, it keeps a node from reaching the
 *   restarted one for a while.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface DelayProxy {
  port: number;
  address: string;
  hold(): void;
  release(): void;
  close(): Promise<void>;
}

export async function delayProxy(targetHost: string, targetPort: number, delayMs = 0): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  let held = false;
  const server: Server = createServer((client) => {
    if (held) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    if (delayMs > 0) {
      // Same delay for every chunk: timers of one duration fire in the order they were set.
      client.on('data', (d) => setTimeout(() => upstream.writable && upstream.write(d), delayMs));
      client.on('end', () => setTimeout(() => upstream.end(), delayMs));
    } else {
      client.pipe(upstream);
    }
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    address: `tcp://127.0.0.1:${port}`,
    hold: () => (held = true),
    release: () => (held = false),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
