/** Free TCP ports on loopback for servers and ZeroMQ addresses in tests. */
import { createServer } from 'node:net';

const handed = new Set<number>();

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const a = srv.address();
        const p = typeof a === 'object' && a ? a.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (!handed.has(port)) {
      handed.add(port);
      return port;
    }
  }
  throw new Error('no free port found');
}

export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await freePort(host));
  return out;
}
