/**
 * The director's ceiling: publishes sequenced per director CPU-second, with
 * history on (memory engine), by the two ways publishes reach it:
 *
 * - `publisher`: the project's ZeroMQ Publisher on the publisher address (a
 *   backend worker's path);
 * - `command`: acknowledged `publish` commands on the command address, a
 *   JSON body each (the HTTP API's and a backend's path);
 * - `batch`: acknowledged publishes as an edge sends a websocket client's:
 *   the command client's `publish_batch` requests (a turn's publishes in one
 *   request, an outcome per publish in its reply).
 *
 *   node dist/bench/director-ceiling.js [--repeat 3] [--seconds 5] [--channels 1,1000] [--window 20000] [--paths publisher,command]
 *
 * One node with the director only (no edge), history kept for every message
 * (history_size 1 000 000). A SUB socket in this process subscribes to every
 * channel topic and counts what comes down: a publish counts once it is
 * sequenced, stored and sent. The load generator (this process) keeps at most
 * `window` publishes in flight (sent and not yet seen coming down, or not yet
 * acknowledged), round-robin over the channels. With many channels every
 * message comes down alone (batches are per channel), and the counting SUB
 * in this process is what bounds the rate: the figure is per director
 * CPU-second all the same. It shares the two cores with
 * the director, so the figure is per director CPU-second (utime+stime of the
 * director's process from /proc); medians of the runs.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { loadavg } from 'node:os';
import { pino } from 'pino';
import { Subscriber } from 'zeromq';
import { Publisher } from '../src/publisher/publisher.js';
import { mainNodeArgs, mainNodeEnv } from './lib/servers.js';
import { CommandClient } from '../src/zmq/command-client.js';
import { messagesInDownFrames } from '../src/cluster/batch.js';
import { sample, cpuBetween } from './lib/proc-stats.js';
import { freePort } from './lib/servers.js';
import { median } from './lib/report.js';
import { textFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: string): string => textFlag(args, name) ?? dflt;
const repeat = Number(flag('repeat', '3'));
const seconds = Number(flag('seconds', '5'));
const channelCounts = flag('channels', '1,1000').split(',').map(Number);
const window = Number(flag('window', '20000'));
const paths = flag('paths', 'publisher,command,batch').split(',') as Path[];
const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli', 'main.js');
const log = pino({ level: 'silent' });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Path = 'publisher' | 'command' | 'batch';

interface Run {
  path: Path;
  channels: number;
  perSecond: number;
  perDirectorCpuSecond: number;
  directorCpuSec: number;
  errors: number;
  load: number;
}

async function once(path: Path, channels: number): Promise<Run> {
  const [port, sub, pub, cmd] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const address = { sub: `tcp://127.0.0.1:${sub}`, pub: `tcp://127.0.0.1:${pub}`, cmd: `tcp://127.0.0.1:${cmd}` };
  const director = spawn(process.execPath, [...mainNodeArgs(), ...(process.env['CEILING_NODE_ARGS'] ?? '').split(' ').filter(Boolean), CLI, 'serve'], {
    env: {
      PATH: process.env['PATH'] ?? '',
      ...mainNodeEnv(),
      TIDINGS_EDGE_ENABLED: 'false',
      TIDINGS_SERVER_HOST: '127.0.0.1',
      TIDINGS_SERVER_PORT: String(port),
      TIDINGS_SUBSCRIBER_ADDRESS: address.sub,
      TIDINGS_PUBLISHER_ADDRESS: address.pub,
      TIDINGS_COMMAND_ADDRESS: address.cmd,
      TIDINGS_HISTORY_SIZE: '1000000',
      TIDINGS_ZMQ_HIGH_WATER_MARK: '1000000',
      TIDINGS_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // The director's last output, to say why it did not come up (a port taken between freePort and its bind
  // by another process on a shared machine, a start-up error) instead of only that it did not.
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  director.stdout!.on('data', keep);
  director.stderr!.on('data', keep);
  let exitCode: number | string | null = null;
  const exited = new Promise((r) => director.once('exit', (code, signal) => r((exitCode = code ?? signal))));
  const notUp = (why: string): Error => new Error(`the director did not come up (${why}); its last output:\n${output.trim().split('\n').slice(-8).join('\n')}`);
  const down = new Subscriber({ receiveHighWaterMark: 1_000_000, linger: 0 });
  const publisher = path === 'publisher' ? new Publisher({ address: address.pub, maxQueue: 1_000_000 }) : null;
  const commands = path !== 'publisher' ? new CommandClient({ address: address.cmd, timeoutMs: 20_000, maxInFlight: window * 2, highWaterMark: 1_000_000, link: { curve: null, maxMessageSize: 64 << 20 }, log }) : null;
  try {
    down.maxMessageSize = 64 << 20;
    down.connect(address.sub);
    down.subscribe('c');
    let received = 0;
    const counting = (async () => {
      for await (const frames of down) received += messagesInDownFrames(frames);
    })().catch(() => undefined);
    publisher?.start();
    commands?.start();
    // Ready when one publish comes back down (the SUB's subscription has reached the director).
    const names = Array.from({ length: channels }, (_, i) => `ceiling-${i}`);
    const readyBy = Date.now() + 30_000;
    while (received === 0) {
      if (exitCode !== null) throw notUp(`it exited: ${exitCode}`);
      if (Date.now() > readyBy) throw notUp('nothing came down within 30 s');
      if (publisher) await publisher.publish(names[0]!, 0).catch(() => undefined);
      else await commands!.request('publish', { channel: names[0], data: 0 }, 500).catch(() => undefined);
      await sleep(100);
    }
    await sleep(200);
    const data = { text: 'x'.repeat(88) }; // ~100 bytes of JSON
    const dataJson = JSON.stringify(data);
    let sent = received;
    let acked = 0;
    let errors = 0;
    let running = true;
    let n = 0;
    const generate = async (): Promise<void> => {
      while (running) {
        // In flight until it has come down (and, on the command path, been acknowledged): the
        // counting SUB must keep up, or what the director sends would pile up in its queues unmeasured.
        const inFlight = publisher ? sent - received : sent - Math.min(acked, received);
        if (inFlight >= window) {
          await new Promise((r) => setImmediate(r));
          continue;
        }
        for (let k = 0; k < 256 && running; k++) {
          const channel = names[n++ % channels]!;
          sent++;
          if (publisher) await publisher.publish(channel, data);
          else if (path === 'batch')
            commands!.publishText(channel, dataJson, null, false).then(
              () => acked++,
              () => errors++,
            );
          else
            commands!.request('publish', { channel, data }).then(
              () => acked++,
              () => errors++,
            );
        }
        await new Promise((r) => setImmediate(r));
      }
    };
    const generating = generate();
    await sleep(1000); // warm-up
    const before = sample([director.pid!]);
    const r0 = received;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const count = received - r0;
    const elapsed = (performance.now() - t0) / 1000;
    const after = sample([director.pid!]);
    running = false;
    await generating;
    const cpu = cpuBetween(before, after);
    void counting;
    return { path, channels, perSecond: count / elapsed, perDirectorCpuSecond: count / cpu, directorCpuSec: cpu, errors, load: loadavg()[0]! };
  } finally {
    await publisher?.close().catch(() => undefined);
    await commands?.stop();
    down.close();
    director.kill('SIGTERM');
    const t = setTimeout(() => director.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

const runs: Run[] = [];
for (let r = 1; r <= repeat; r++) {
  for (const channels of channelCounts) {
    for (const path of paths) {
      const run = await once(path, channels);
      runs.push(run);
      process.stdout.write(`[${r}/${repeat}] ${path}, ${channels} channel(s): ${Math.round(run.perSecond)} sequenced/s, ${Math.round(run.perDirectorCpuSecond)} per director CPU-s (${run.directorCpuSec.toFixed(2)} CPU-s), errors ${run.errors}, load ${run.load.toFixed(1)}\n`);
    }
  }
}
process.stdout.write(`\nmedians of ${repeat} (${seconds} s each, window ${window}, history on):\n\n`);
process.stdout.write('| path | channels | sequenced per second | per director CPU-second | runs (per director CPU-s) |\n|---|---:|---:|---:|---|\n');
for (const channels of channelCounts) {
  for (const path of paths) {
    const mine = runs.filter((x) => x.path === path && x.channels === channels);
    const m = (f: (x: Run) => number): number => median(mine.map(f));
    process.stdout.write(`| ${path} | ${channels} | ${Math.round(m((x) => x.perSecond))} | ${Math.round(m((x) => x.perDirectorCpuSecond))} | ${mine.map((x) => Math.round(x.perDirectorCpuSecond)).join(' / ')} |\n`);
  }
}
if (runs.some((x) => x.errors > 0)) process.exitCode = 1;
