/**
 * The sequencing ceiling of one director: acknowledged publishes per second
 * (and per director CPU-second), director and Redis memory, with the memory
 * engine and with the redis engine, in the same run.
 *
 *   node dist/bench/sequencing.js [--repeat 3] [--seconds 5] [--channels 100] [--in-flight 512] [--history 1000]
 *
 * One director (no edges, nobody subscribed, so the figure is sequencing and
 * history alone), a load generator in this process keeping `in-flight`
 * acknowledged publishes of 100 bytes outstanding over the command address,
 * round-robin over `channels` channels. The redis engine runs against a
 * redis-server started here (append-only file on, fsync every second, as in
 * production). The generator shares the two cores with the director and
 * Redis: per-CPU-second figures are the fair comparison; medians of the runs.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { CommandClient } from '../src/zmq/command-client.js';
import { linkLimit } from '../src/zmq/security.js';
import { startRedis, type RedisServer } from '../test/helpers/redis.js';
import { freePorts } from '../test/helpers/ports.js';
import { sample, cpuBetween } from './lib/proc-stats.js';
import { numberFlag } from './lib/flags.js';

const args = process.argv.slice(2);
const flag = (name: string, dflt: number): number => numberFlag(args, name, dflt);
const repeat = flag('repeat', 3);
const seconds = flag('seconds', 5);
const channels = flag('channels', 100);
const inFlight = flag('in-flight', 512);
const history = flag('history', 1000);
const here = dirname(fileURLToPath(import.meta.url));
const CLI = join(here, '..', 'src', 'cli', 'main.js');
const log = pino({ level: 'silent' });

interface Run {
  engine: 'memory' | 'redis';
  perSecond: number;
  perDirectorCpuSecond: number;
  perTotalCpuSecond: number;
  directorRssMb: number;
  redisRssMb: number;
  errors: number;
}

async function once(engine: 'memory' | 'redis'): Promise<Run> {
  let redis: RedisServer | null = null;
  if (engine === 'redis') redis = await startRedis({ appendonly: true, appendfsync: 'everysec' });
  const [port, sub, pub, cmd] = await freePorts(4);
  const director = spawn(process.execPath, [CLI, 'serve'], {
    env: {
      PATH: process.env['PATH'] ?? '',
      TIDINGS_EDGE_ENABLED: 'false',
      TIDINGS_SERVER_PORT: String(port),
      TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${sub}`,
      TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${pub}`,
      TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${cmd}`,
      TIDINGS_STATE_ENGINE: engine,
      TIDINGS_HISTORY_SIZE: String(history),
      TIDINGS_LOG_LEVEL: 'warn',
      ...(redis ? { TIDINGS_REDIS_URL: redis.url } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    director.stdout!.resume();
    director.stderr!.resume();
    const client = new CommandClient({
      address: `tcp://127.0.0.1:${cmd}`,
      timeoutMs: 10_000,
      maxInFlight: inFlight * 2,
      highWaterMark: 100_000,
      // Loopback without keys, as the director runs here; the node's default link limit.
      link: { curve: null, maxMessageSize: linkLimit({ max_message_size: 65536 }) },
      log,
    });
    client.start();
    // Ready when a publish is acknowledged (the redis engine first takes its lease).
    const readyBy = Date.now() + 20_000;
    for (;;) {
      try {
        await client.request('publish', { channel: 'warm', data: 1 }, 1000);
        break;
      } catch (err) {
        if (Date.now() > readyBy) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const data = { text: 'x'.repeat(88) }; // ~100 bytes of JSON
    let acked = 0;
    let errors = 0;
    let running = true;
    let n = 0;
    const loop = async (): Promise<void> => {
      while (running) {
        try {
          await client.request('publish', { channel: `seq.${n++ % channels}`, data });
          acked++;
        } catch {
          errors++;
        }
      }
    };
    const loops = Array.from({ length: inFlight }, loop);
    await new Promise((r) => setTimeout(r, 1000)); // warm-up
    const roots = [director.pid!, ...(redis ? [redis.pid] : [])];
    const before = sample([director.pid!]);
    const beforeAll = sample(roots);
    const a0 = acked;
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const elapsed = (performance.now() - t0) / 1000;
    const count = acked - a0;
    const after = sample([director.pid!]);
    const afterAll = sample(roots);
    const redisRss = redis ? sample([redis.pid]).rss : 0;
    running = false;
    await Promise.allSettled(loops);
    await client.stop();
    return {
      engine,
      perSecond: count / elapsed,
      perDirectorCpuSecond: count / cpuBetween(before, after),
      perTotalCpuSecond: count / cpuBetween(beforeAll, afterAll),
      directorRssMb: after.rss / 2 ** 20,
      redisRssMb: redisRss / 2 ** 20,
      errors,
    };
  } finally {
    director.kill('SIGKILL');
    await new Promise((r) => director.once('exit', r));
    await redis?.stop();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const runs: Run[] = [];
for (let r = 0; r < repeat; r++) {
  for (const engine of ['memory', 'redis'] as const) {
    const run = await once(engine);
    runs.push(run);
    process.stdout.write(`run ${r + 1} ${engine}: ${Math.round(run.perSecond)} publishes/s, ${Math.round(run.perDirectorCpuSecond)} per director CPU-s, ${Math.round(run.perTotalCpuSecond)} per director+redis CPU-s, director RSS ${run.directorRssMb.toFixed(0)} MB, redis RSS ${run.redisRssMb.toFixed(0)} MB, errors ${run.errors}\n`);
  }
}
const m = (engine: string, k: keyof Run): number => median(runs.filter((x) => x.engine === engine).map((x) => x[k] as number));
process.stdout.write(`\nmedians of ${repeat} (${channels} channels, ${inFlight} in flight, history ${history}, ${seconds} s):\n`);
process.stdout.write('| engine | acked publishes/s | per director CPU-s | per director+Redis CPU-s | director RSS MB | Redis RSS MB |\n|---|---|---|---|---|---|\n');
for (const e of ['memory', 'redis']) {
  process.stdout.write(`| ${e} | ${Math.round(m(e, 'perSecond'))} | ${Math.round(m(e, 'perDirectorCpuSecond'))} | ${Math.round(m(e, 'perTotalCpuSecond'))} | ${m(e, 'directorRssMb').toFixed(0)} | ${m(e, 'redisRssMb').toFixed(0)} |\n`);
}
process.stdout.write(`redis / memory: ${(m('redis', 'perSecond') / m('memory', 'perSecond')).toFixed(2)}x publishes/s\n`);
process.exit(0);
