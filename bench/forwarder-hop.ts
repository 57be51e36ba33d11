/**
 * What one forwarder costs per batch and per message, alone: a real
 * forwarder node (`tidings serve`, no director, no edge) between a stand-in
 * director (this process: XPUB, XSUB, ROUTER) and a stand-in edge and
 * publisher (this process: SUB, PUB), fed at a fixed rate with batches of the
 * sizes the small-rooms scenario makes (down: 64 KB message batches of 230-byte
 * pushes; up: publish batches of 117-byte entries). The forwarder's CPU per
 * second, per thread, is read from /proc; every batch sent is checked to have
 * arrived, in order. A fixed rate, not a saturated one: the cost per batch is
 * measured with the forwarder about as busy as in the cluster bench, and the
 * shared machine's load moves it less.
 *
 *   node dist/bench/forwarder-hop.js [--builds dirA,dirB] [--repeat 3] [--seconds 5]
 *     [--down 200] [--up 130] [--down-entries 230] [--up-entries 370] [--burst 1]
 *
 * `--builds` takes worktrees with a built dist/ (default: this one); with
 * several, runs alternate between them (A B A B ...), and each run prints one
 * line: µs of forwarder CPU per batch and per message, main (JavaScript)
 * thread and ZeroMQ I/O thread apart, with their wake-ups. A path ending in
 * .mjs is run instead of a build, with the same TIDINGS_* addresses (a
 * bare relay, to compare against). For experiments: HOP_NODE_ARGS replaces
 * the node flags (default the main process' --max-semi-space-size=4),
 * HOP_CHILD_ENV adds "NAME=value ..." to the forwarder's environment
 * (launched with the main process' own, MAIN_PROCESS_ENV, as the bench's nodes),
 * HOP_CHILD_LOG appends its standard output to a file (--trace-gc).
 */
import { spawn } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XPublisher, XSubscriber, Router, Subscriber, Publisher } from 'zeromq';
import { freePort, mainNodeEnv } from './lib/servers.js';
import { sample, threadsBetween } from './lib/proc-stats.js';
import { channelTopic } from '../src/cluster/topics.js';
import { DownKind, encodeHeader } from '../src/cluster/wire.js';
import { encodeMessageBatch, messagesIn, messagesInDownFrames, PUBLISH_BATCH_MARKER } from '../src/cluster/batch.js';
import { textFlag } from './lib/flags.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, dflt: string): string => textFlag(args, name) ?? dflt;
const builds = flag('builds', resolve(here, '..', '..')).split(',').map((b) => (b.endsWith('.mjs') ? resolve(b) : resolve(b)));
const repeat = Number(flag('repeat', '3'));
const seconds = Number(flag('seconds', '5'));
const downRate = Number(flag('down', '200'));
const upRate = Number(flag('up', '130'));
const downEntries = Number(flag('down-entries', '230'));
const upEntries = Number(flag('up-entries', '370'));
const burst = Number(flag('burst', '1'));
const HOST = '127.0.0.1';
const CHANNEL = 'room-0';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A down batch of `n` pushes of about 230 bytes, offsets from `first`. */
function downBatch(first: number, n: number): Buffer[] {
  const offsets: number[] = [];
  const pushes: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    offsets.push(first + i);
    pushes.push(Buffer.from(`{"type":"message","channel":"${CHANNEL}","offset":${first + i},"epoch":"e1","sender":null,"time":1764640000000,"data":${JSON.stringify({ seq: first + i, pad: 'x'.repeat(96) })}}`));
  }
  return [channelTopic(CHANNEL), encodeHeader(DownKind.MessageBatch, first, 'e1'), encodeMessageBatch(offsets, pushes)];
}

/** A publish batch of `n` entries of about 117 bytes ([target][flags][name len][sender len][data len][name][data]). */
function upBatch(seq: number, n: number): Buffer[] {
  const parts: Buffer[] = [];
  const name = Buffer.from(CHANNEL);
  for (let i = 0; i < n; i++) {
    const data = Buffer.from(JSON.stringify({ seq: seq * n + i, pad: 'x'.repeat(80) }));
    const head = Buffer.allocUnsafe(10);
    head[0] = 0x63;
    head[1] = 0;
    head.writeUInt16BE(name.length, 2);
    head.writeUInt16BE(0, 4);
    head.writeUInt32BE(data.length, 6);
    parts.push(head, name, data);
  }
  return [Buffer.from(PUBLISH_BATCH_MARKER), Buffer.concat(parts)];
}

interface Outcome {
  build: string;
  downPerS: number;
  upPerS: number;
  msgsPerS: number;
  /** ZeroMQ messages out of the forwarder per second (batches joined count once). */
  outPerS: number;
  cpuMsPerS: number;
  main: { ms: number; wakes: number };
  io: { ms: number; wakes: number };
  other: number;
  lost: number;
  load: number;
}

async function once(build: string): Promise<Outcome> {
  const [dSub, dPub, dCmd, fSub, fPub, fCmd, port] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  const tcp = (p: number): string => `tcp://${HOST}:${p}`;
  // The stand-in director.
  const director = { down: new XPublisher({ sendHighWaterMark: 100_000 }), up: new XSubscriber({ receiveHighWaterMark: 100_000 }), cmd: new Router() };
  await director.down.bind(tcp(dSub));
  await director.up.bind(tcp(dPub));
  await director.cmd.bind(tcp(dCmd));
  const child = spawn(process.execPath, [...(process.env['HOP_NODE_ARGS'] ?? '--max-semi-space-size=4').split(' ').filter((a) => a !== ''), ...(build.endsWith('.mjs') ? [build] : [join(build, 'dist', 'src', 'cli', 'main.js'), 'serve'])], {
    env: {
      PATH: process.env['PATH'] ?? '',
      ...mainNodeEnv(),
      ...(process.env['HOP_CHILD_ENV'] ? Object.fromEntries(process.env['HOP_CHILD_ENV'].split(' ').map((kv) => kv.split('=', 2) as [string, string])) : {}),
      TIDINGS_LOG_LEVEL: 'info',
      TIDINGS_DIRECTOR_ENABLED: 'false',
      TIDINGS_FORWARDER_ENABLED: 'true',
      TIDINGS_EDGE_ENABLED: 'false',
      TIDINGS_SERVER_HOST: HOST,
      TIDINGS_SERVER_PORT: String(port),
      TIDINGS_SUBSCRIBER_ADDRESS: tcp(fSub),
      TIDINGS_PUBLISHER_ADDRESS: tcp(fPub),
      TIDINGS_COMMAND_ADDRESS: tcp(fCmd),
      TIDINGS_DIRECTOR_SUBSCRIBER_ADDRESS: tcp(dSub),
      TIDINGS_DIRECTOR_PUBLISHER_ADDRESS: tcp(dPub),
      TIDINGS_DIRECTOR_COMMAND_ADDRESS: tcp(dCmd),
      TIDINGS_ZMQ_HIGH_WATER_MARK: '1000000',
      TIDINGS_NODE_ID: 'hop',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  if (process.env['HOP_CHILD_LOG']) child.stdout.on('data', (d: Buffer) => appendFileSync(process.env['HOP_CHILD_LOG']!, d));
  child.stderr.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const edge = new Subscriber({ receiveHighWaterMark: 100_000 });
  const publisher = new Publisher({ sendHighWaterMark: 100_000 });
  let running = true;
  try {
    for (let i = 0; !/"msg":"node ready"/.test(out); i++) {
      if (i > 600 || child.exitCode !== null) throw new Error(`forwarder did not start:\n${out.slice(-2000)}`);
      await sleep(20);
    }
    // The director subscribes to every publish; the edge to the channel (through the forwarder).
    await director.up.send(Buffer.from([1]));
    edge.connect(tcp(fSub));
    edge.subscribe(channelTopic(CHANNEL));
    publisher.connect(tcp(fPub));
    // Wait until a probe passes both ways.
    let downSeen = 0;
    let upSeen = 0;
    /** ZeroMQ messages that came out of the forwarder (fewer than the batches when it joined some). */
    let downMessages = 0;
    let upMessages = 0;
    let downOrder = true;
    // Checked from the paced phase on (probes sent before the edge's subscription arrived are not delivered).
    let nextDown = 0;
    const edgeLoop = (async () => {
      // Counted in entries, as batches sent: a forwarder that joined batches (tried in session 11) passes this check too.
      for await (const frames of edge) {
        const first = frames[1]!.readDoubleBE(1);
        const entries = messagesInDownFrames(frames);
        if (nextDown > 0 && first !== nextDown) downOrder = false;
        if (nextDown > 0) nextDown = first + entries;
        downSeen += entries / downEntries;
        downMessages++;
      }
    })().catch(() => undefined);
    const upLoop = (async () => {
      for await (const msg of director.up) {
        if (msg.length !== 2) continue;
        upSeen += messagesIn('up', msg) / upEntries;
        upMessages++;
      }
    })().catch(() => undefined);
    const up = upBatch(0, upEntries);
    for (let i = 0; downSeen === 0 || upSeen === 0; i++) {
      if (i > 500) throw new Error('no batch crossed the forwarder within 10 s');
      await director.down.send(downBatch(1, downEntries));
      await publisher.send(up);
      await sleep(20);
    }
    await sleep(200);
    let downSent = downSeen;
    let upSent = upSeen;
    // Paced senders: every tick sends what is due by now.
    const pace = async (rate: number, send: () => Promise<void>): Promise<void> => {
      const start = performance.now();
      let sent = 0;
      while (running) {
        const due = Math.floor(((performance.now() - start) / 1000) * rate);
        while (sent < due) {
          await send();
          sent++;
        }
        await sleep(2);
      }
    };
    let offset = 1_000_000;
    nextDown = offset;
    const senders = [
      // --burst k: k batches back to back each time (the same batch rate), as a busy director or publisher sends them.
      pace(downRate / burst, async () => {
        for (let k = 0; k < burst; k++) {
          await director.down.send(downBatch(offset, downEntries));
          offset += downEntries;
          downSent++;
        }
      }),
      pace(upRate / burst, async () => {
        for (let k = 0; k < burst; k++) {
          await publisher.send(up);
          upSent++;
        }
      }),
    ];
    await sleep(1500); // warm-up: JIT, buffers
    const before = sample([child.pid!], true);
    const down0 = downSeen;
    const out0 = downMessages + upMessages;
    const up0 = upSeen;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const after = sample([child.pid!], true);
    const elapsed = (performance.now() - t0) / 1000;
    const downN = downSeen - down0;
    const outN = downMessages + upMessages - out0;
    const upN = upSeen - up0;
    running = false;
    await Promise.all(senders);
    for (let i = 0; i < 250 && (downSeen < downSent || upSeen < upSent); i++) await sleep(20);
    const rows = threadsBetween(before, after, () => 'forwarder');
    const threads = rows[0]?.threads ?? [];
    const kind = (k: string): { ms: number; wakes: number } => {
      const t = threads.find(([name]) => name === k);
      return t ? { ms: (t[1] / elapsed) * 1000, wakes: t[2] / elapsed } : { ms: 0, wakes: 0 };
    };
    const total = threads.reduce((a, [, s]) => a + s, 0);
    const main = kind('node');
    const io = kind('ZMQbg/IO/#');
    void edgeLoop;
    void upLoop;
    return {
      build,
      downPerS: downN / elapsed,
      upPerS: upN / elapsed,
      msgsPerS: (downN * downEntries + upN * upEntries) / elapsed,
      outPerS: outN / elapsed,
      cpuMsPerS: (total / elapsed) * 1000,
      main,
      io,
      other: (total / elapsed) * 1000 - main.ms - io.ms,
      lost: downSent - downSeen + (upSent - upSeen) + (downOrder ? 0 : 1e9),
      load: loadavg()[0]!,
    };
  } finally {
    running = false;
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    for (const s of [director.down, director.up, director.cmd, edge, publisher]) s.close();
  }
}

async function main(): Promise<void> {
  console.log(`forwarder alone: ${downRate} down batches/s of ${downEntries} messages, ${upRate} up batches/s of ${upEntries}${burst > 1 ? `, ${burst} at a time` : ""}; ${seconds} s measured; load ${loadavg()[0]!.toFixed(1)}`);
  const all: Outcome[] = [];
  for (let r = 0; r < repeat; r++) {
    for (const b of builds) {
      const o = await once(b);
      all.push(o);
      const batches = o.downPerS + o.upPerS;
      console.log(
        `${b}: ${o.cpuMsPerS.toFixed(1)} ms CPU/s = ${((o.cpuMsPerS * 1000) / batches).toFixed(1)} µs/batch, ${((o.cpuMsPerS * 1000) / o.msgsPerS).toFixed(3)} µs/msg ` +
          `(main ${o.main.ms.toFixed(1)} ms, ${o.main.wakes.toFixed(0)} wakes/s; I/O ${o.io.ms.toFixed(1)} ms, ${o.io.wakes.toFixed(0)} wakes/s; other ${o.other.toFixed(1)} ms); ` +
          `${o.downPerS.toFixed(0)} + ${o.upPerS.toFixed(0)} batches/s (${o.outPerS.toFixed(0)} out), ${(o.msgsPerS / 1000).toFixed(1)} k msg/s, lost ${o.lost}, load ${o.load.toFixed(1)}`,
      );
    }
  }
  if (builds.length > 1 || repeat > 1) {
    for (const b of builds) {
      const mine = all.filter((o) => o.build === b).map((o) => (o.cpuMsPerS * 1000) / (o.downPerS + o.upPerS)).sort((x, y) => x - y);
      console.log(`${b}: median ${mine[Math.floor(mine.length / 2)]!.toFixed(1)} µs/batch (${mine.map((x) => x.toFixed(1)).join(' / ')})`);
    }
  }
}

void main();
