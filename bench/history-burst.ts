/**
 * Many clients of one edge asking for a channel's history at once (a chat
 * page opened by everyone after a deploy): `node dist/bench/history-burst.js
 * [--clients N] [--messages N] [--bytes N] [--rounds N]`.
 *
 * One Tidings node; a channel with `messages` messages of `bytes` bytes;
 * `clients` authenticated clients, connected first; then, each round, every
 * client sends `history {limit: messages}` in the same moment. Reported per
 * round: the time until the last reply, reply latency p50 / p99, the node's
 * CPU over the round, and that every reply held every message.
 */
import WebSocket from 'ws';
import { startServer } from './lib/servers.js';
import { cpuBetween, sample } from './lib/proc-stats.js';
import { textFlag } from './lib/flags.js';
import { signToken } from '../src/auth/sign.js';

const args = process.argv.slice(2);
const num = (name: string, def: number): number => Number(textFlag(args, name) ?? def);
const clients = num('clients', 2000);
const messages = num('messages', 50);
const bytes = num('bytes', 200);
const rounds = num('rounds', 3);
const CHANNEL = 'history-burst';

/** A client connected with its own token; resolves each reply by id. */
async function open(url: string, token: string): Promise<{ ws: WebSocket; request: (id: number, method: string, params: object) => Promise<unknown> }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  ws.on('message', (data: Buffer) => {
    for (const line of data.toString('utf8').split('\n')) {
      const m = JSON.parse(line) as { id?: number; result?: unknown; error?: { code: number; message: string } };
      if (m.id === undefined) continue;
      const w = waiting.get(m.id);
      waiting.delete(m.id);
      if (m.error) w?.reject(new Error(`${m.error.code} ${m.error.message}`));
      else w?.resolve(m.result);
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const request = (id: number, method: string, params: object): Promise<unknown> =>
    new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await request(1, 'connect', { token });
  return { ws, request };
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  const server = await startServer('tidings');
  try {
    const url = server.urls[0]!;
    const secret = server.tokenSecret!;
    const publisher = await open(url, await signToken({ secret, user: 'publisher', ttl: 3600, publish: [CHANNEL] }));
    const pad = 'x'.repeat(Math.max(0, bytes - 40));
    for (let i = 0; i < messages; i++) await publisher.request(10 + i, 'publish', { channel: CHANNEL, data: { i, pad } });
    const conns: Awaited<ReturnType<typeof open>>[] = [];
    for (let start = 0; start < clients; start += 200) {
      const batch = Array.from({ length: Math.min(200, clients - start) }, async (_, j) => open(url, await signToken({ secret, user: `reader-${start + j}`, ttl: 3600, history: [CHANNEL] })));
      conns.push(...(await Promise.all(batch)));
    }
    console.log(`${clients} clients connected; ${messages} messages of about ${bytes} B in ${CHANNEL}`);
    for (let round = 1; round <= rounds; round++) {
      await new Promise((r) => setTimeout(r, 1000));
      const before = sample(server.pids);
      const t0 = performance.now();
      const latencies = await Promise.all(
        conns.map(async (c) => {
          const page = (await c.request(1000 + round, 'history', { channel: CHANNEL, limit: messages })) as { messages: unknown[]; more: boolean };
          if (page.messages.length !== messages || page.more) throw new Error(`a reply held ${page.messages.length} of ${messages} messages (more: ${page.more})`);
          return performance.now() - t0;
        }),
      );
      const cpu = cpuBetween(before, sample(server.pids));
      latencies.sort((a, b) => a - b);
      console.log(
        `[${round}/${rounds}] ${clients} history replies of ${messages} messages each: all in ${latencies[latencies.length - 1]!.toFixed(0)} ms (p50 ${pct(latencies, 50).toFixed(0)}, p99 ${pct(latencies, 99).toFixed(0)} ms), ${((cpu * 1e6) / clients).toFixed(0)} µs of server CPU per reply`,
      );
    }
    for (const c of conns) c.ws.terminate();
    publisher.ws.terminate();
  } finally {
    await server.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
