/**
 * What one hop between two processes costs in latency when messages are
 * spaced out (issue 15's first-subscriber figure at 20 msg/s): a ZeroMQ hop
 * shaped like the director's (XPUB bound, SUB connected, over tcp on
 * loopback; the same over ipc://, a unix socket, as edges on the director's
 * host could use) against a plain TCP socket (what a websocket server's hop is),
 * each between this process and a forked receiver. One-way times come from
 * the monotonic clock both processes share; runs of the two kinds alternate,
 * medians of `--repeat` and the same-run ratio.
 *
 *   npm run build && node dist/bench/hop-latency.js [--messages 250] [--gap-ms 20] [--repeat 3]
 *
 * Why: a ZeroMQ message wakes four threads (the sender's I/O thread, the
 * receiver's I/O thread, then the receiver's main thread through libzmq's
 * mailbox) where a TCP write wakes one (the receiver's main thread).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createServer, connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subscriber, XPublisher } from 'zeromq';
import { median } from './lib/report.js';
import { numberFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => numberFlag(args, name, dflt);
const MESSAGES = flag('messages', 250);
const GAP_MS = flag('gap-ms', 20);
const REPEAT = flag('repeat', 3);
const PAYLOAD = 100;

type Kind = 'zeromq' | 'zeromq-ipc' | 'tcp';
const KINDS: readonly Kind[] = ['zeromq', 'zeromq-ipc', 'tcp'];
/** Parent → receiver: where to connect. Receiver → parent: ready, then the one-way times (µs). */
type ToReceiver = { kind: Kind; address: string };
type FromReceiver = { ready: true } | { micros: number[] };

const nowMicros = (): number => Number(process.hrtime.bigint() / 1000n);

/** The receiver: connects, reads MESSAGES messages (each starts with the sender's monotonic µs as 8 bytes), reports. */
async function receiver(): Promise<void> {
  const msg = await new Promise<ToReceiver>((resolve) => process.once('message', (m) => resolve(m as ToReceiver)));
  const micros: number[] = [];
  const took = (b: Buffer): void => void micros.push(nowMicros() - Number(b.readBigUInt64BE(0)));
  if (msg.kind !== 'tcp') {
    const sub = new Subscriber({ linger: 0 });
    sub.connect(msg.address);
    sub.subscribe();
    process.send!({ ready: true } satisfies FromReceiver);
    for await (const [body] of sub) {
      took(body!);
      if (micros.length === MESSAGES) break;
    }
    sub.close();
  } else {
    const [host, port] = msg.address.split(':');
    const socket = connect(Number(port), host!);
    socket.setNoDelay(true);
    await new Promise<void>((r) => socket.once('connect', () => r()));
    process.send!({ ready: true } satisfies FromReceiver);
    let pending: Buffer = Buffer.alloc(0);
    await new Promise<void>((resolve) => {
      socket.on('data', (d: Buffer) => {
        pending = pending.length ? Buffer.concat([pending, d]) : d;
        while (pending.length >= PAYLOAD) {
          took(pending);
          pending = pending.subarray(PAYLOAD);
        }
        if (micros.length >= MESSAGES) resolve();
      });
    });
    socket.destroy();
  }
  process.send!({ micros } satisfies FromReceiver, () => process.exit(0));
}

function waitMessage(child: ChildProcess): Promise<FromReceiver> {
  return new Promise((resolve, reject) => {
    child.once('message', (m) => resolve(m as FromReceiver));
    child.once('exit', (code) => reject(new Error(`receiver exited (${code})`)));
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function stamped(): Buffer {
  const b = Buffer.alloc(PAYLOAD, 0x61);
  b.writeBigUInt64BE(BigInt(nowMicros()), 0);
  return b;
}

/** One run: MESSAGES messages GAP_MS apart over one hop of `kind`; returns the one-way times (µs). */
async function run(kind: Kind): Promise<number[]> {
  const child = fork(fileURLToPath(import.meta.url), ['--receiver', ...args], { stdio: 'inherit' });
  try {
    if (kind !== 'tcp') {
      const xpub = new XPublisher({ linger: 0 });
      await xpub.bind(kind === 'zeromq' ? 'tcp://127.0.0.1:*' : `ipc://${join(tmpdir(), `tidings-hop-${process.pid}.sock`)}`);
      child.send({ kind, address: xpub.lastEndpoint! } satisfies ToReceiver);
      await waitMessage(child);
      await xpub.receive(); // the subscription arrived: the path is live
      const done = waitMessage(child);
      for (let i = 0; i < MESSAGES; i++) {
        await sleep(GAP_MS);
        await xpub.send(stamped());
      }
      const r = await done;
      xpub.close();
      return 'micros' in r ? r.micros : [];
    }
    const server = createServer();
    const accepted = new Promise<Socket>((r) => server.once('connection', r));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    child.send({ kind, address: `127.0.0.1:${port}` } satisfies ToReceiver);
    const socket = await accepted;
    socket.setNoDelay(true);
    await waitMessage(child);
    const done = waitMessage(child);
    for (let i = 0; i < MESSAGES; i++) {
      await sleep(GAP_MS);
      socket.write(stamped());
    }
    const r = await done;
    socket.destroy();
    server.close();
    return 'micros' in r ? r.micros : [];
  } finally {
    if (child.exitCode === null) child.kill();
  }
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;

async function main(): Promise<void> {
  const p50: Record<Kind, number[]> = { zeromq: [], 'zeromq-ipc': [], tcp: [] };
  const p99: Record<Kind, number[]> = { zeromq: [], 'zeromq-ipc': [], tcp: [] };
  const ratios: number[] = [];
  console.log(`one hop between two processes, ${MESSAGES} messages of ${PAYLOAD} B, ${GAP_MS} ms apart; load average ${loadavg()[0]!.toFixed(1)}`);
  for (let r = 1; r <= REPEAT; r++) {
    const line: string[] = [];
    for (const kind of KINDS) {
      const times = (await run(kind)).sort((a, b) => a - b);
      if (times.length !== MESSAGES) throw new Error(`${kind}: ${times.length} of ${MESSAGES} messages arrived`);
      p50[kind].push(pct(times, 50));
      p99[kind].push(pct(times, 99));
      line.push(`${kind} p50 ${pct(times, 50)} µs, p99 ${pct(times, 99)} µs`);
    }
    ratios.push(p50.zeromq.at(-1)! / p50.tcp.at(-1)!);
    console.log(`[${r}/${REPEAT}] ${line.join('; ')}; p50 ratio ${ratios.at(-1)!.toFixed(2)}x (load ${loadavg()[0]!.toFixed(1)})`);
  }
  const [z, zi, t] = [median(p50.zeromq), median(p50['zeromq-ipc']), median(p50.tcp)];
  console.log(`\nmedians of ${REPEAT}: ZeroMQ p50 ${z} µs (p99 ${median(p99.zeromq)}), ZeroMQ over ipc p50 ${zi} µs (p99 ${median(p99['zeromq-ipc'])}), TCP p50 ${t} µs (p99 ${median(p99.tcp)}); a ZeroMQ hop adds ${z - t} µs at the median, ${median(ratios).toFixed(2)}x (same-run ratio, median)`);
}

if (args.includes('--receiver')) void receiver();
else
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
