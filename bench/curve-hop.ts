/**
 * The CPU cost of CURVE on one ZeroMQ hop, alone: an XPUB bound and a SUB
 * connected through Tidings' own helpers (bindSecured/connectSecured, the
 * ZAP handler), both in this process, carrying messages shaped like the
 * director's pushes (topic, header, a 160-byte push). CPU is the process'
 * (both sockets and libzmq's I/O thread), per message, plain and CURVE runs
 * alternating; medians of `--repeat` (default 5) and the same-run ratios.
 *
 *   npm run build && node dist/bench/curve-hop.js [--messages 100000] [--repeat 5]
 */
import { Subscriber, XPublisher, curveKeyPair } from 'zeromq';
import { pino } from 'pino';
import { resolveConfig } from '../src/config/resolve.js';
import { bindSecured, connectSecured, nodeClientLink } from '../src/zmq/security.js';
import { median } from './lib/report.js';
import { numberFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => numberFlag(args, name, dflt);
const MESSAGES = flag('messages', 100_000);
const REPEAT = flag('repeat', 5);
const log = pino({ level: 'warn' });

async function hop(curve: boolean): Promise<{ cpuMicros: number; wallMs: number }> {
  const env: Record<string, string> = curve ? { TIDINGS_CURVE_SECRET_KEY: curveKeyPair().secretKey } : {};
  const config = resolveConfig({ env });
  const xpub = new XPublisher({ noDrop: true, sendHighWaterMark: 100_000, linger: 0 });
  const bound = await bindSecured(xpub, 'tcp://127.0.0.1:*', 'subscriber', config, log);
  const sub = new Subscriber({ receiveHighWaterMark: 100_000, linger: 0 });
  connectSecured(sub, xpub.lastEndpoint!, nodeClientLink(config, 'local'));
  const topic = Buffer.from('bench\0');
  sub.subscribe(topic);
  await xpub.receive(); // the subscription arrived: the path is live
  const header = Buffer.alloc(20, 1);
  const body = Buffer.alloc(160, 0x61);
  let received = 0;
  const done = (async () => {
    for await (const _ of sub) if (++received === MESSAGES) return;
  })();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < MESSAGES; i++) await xpub.send([topic, header, body]);
  await done;
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  sub.close();
  xpub.close();
  await bound.release();
  return { cpuMicros: (cpu.user + cpu.system) / MESSAGES, wallMs };
}

async function main(): Promise<void> {
  const plain: number[] = [];
  const keyed: number[] = [];
  const ratios: number[] = [];
  await hop(false); // warm-up
  for (let r = 1; r <= REPEAT; r++) {
    const a = await hop(false);
    const b = await hop(true);
    plain.push(a.cpuMicros);
    keyed.push(b.cpuMicros);
    ratios.push(b.cpuMicros / a.cpuMicros);
    console.log(`[${r}/${REPEAT}] plain ${a.cpuMicros.toFixed(2)} µs CPU/msg (${a.wallMs.toFixed(0)} ms), curve ${b.cpuMicros.toFixed(2)} µs CPU/msg (${b.wallMs.toFixed(0)} ms), ratio ${(b.cpuMicros / a.cpuMicros).toFixed(2)}`);
  }
  const mp = median(plain);
  const mk = median(keyed);
  console.log(`\none hop, ${MESSAGES} messages of 3 frames (6 + 20 + 160 B), medians of ${REPEAT}:`);
  console.log(`plain ${mp.toFixed(2)} µs CPU per message, curve ${mk.toFixed(2)} µs: +${(mk - mp).toFixed(2)} µs per message per hop; same-run ratio median ${median(ratios).toFixed(2)}x`);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
