/**
 * Free TCP ports on loopback for servers and ZeroMQ addresses in tests.
 *
 * Ports come from outside the kernel's ephemeral range: a port the kernel
 * hands out for `listen(0)` is one it may also give, a moment later, to an
 * outgoing connection (a websocket client, a ZeroMQ connect, a fetch) made
 * before the test's server binds it, which then fails with EADDRINUSE. Below
 * (or above) that range only servers take ports. Each process starts at a
 * random place in the window so that suites running side by side rarely try
 * the same ones, and every port is checked by binding it.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const handed = new Set<number>();

/** The ports outside the ephemeral range (at least 2 000 of them), or null to let the kernel choose. */
function serverPortWindow(): [number, number] | null {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number) as [number, number];
    if (lo - 1 - 10_000 >= 2000) return [10_000, lo - 1];
    if (65_535 - hi >= 2000) return [hi + 1, 65_535];
  } catch {
    // not Linux: the kernel's choice
  }
  return null;
}

const WINDOW = serverPortWindow();
let next = WINDOW ? WINDOW[0] + Math.floor(Math.random() * (WINDOW[1] - WINDOW[0] + 1)) : 0;

/** Listen on `port` (0: the kernel chooses) and close again; the port, or null when it is taken. */
function probe(port: number, host: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' || err.code === 'EACCES' ? resolve(null) : reject(err)));
    srv.listen(port, host, () => {
      const a = srv.address();
      const p = typeof a === 'object' && a ? a.port : 0;
      srv.close(() => resolve(p));
    });
  });
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 500; attempt++) {
    let candidate = 0;
    if (WINDOW) {
      candidate = next;
      next = next >= WINDOW[1] ? WINDOW[0] : next + 1;
      if (handed.has(candidate)) continue;
    }
    const port = await probe(candidate, host);
    if (port !== null && !handed.has(port)) {
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
