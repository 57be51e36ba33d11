/**
 * A whole director process receiving N messages over ZeroMQ, with history
 * (room for all of them) and, as the baseline of the same run, with
 * history_size 0: what its resident memory grows by, and how much of that is
 * history (the difference between the two).
 *
 *   npm run build && node dist/bench/history-director.js [--messages 100000] [--size 1000]
 *
 * The result of a run is in docs/operations.md ("History and memory").
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { Publisher } from '../src/publisher/publisher.js';
import { freePorts } from '../test/helpers/ports.js';
import { numberFlag } from './lib/flags.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const arg = (name: string, def: number): number => numberFlag(process.argv, name, def);
const MESSAGES = arg('messages', 100_000);
const SIZE = arg('size', 1000);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function metric(http: string, line: string): Promise<number> {
  const text = await (await fetch(`${http}/metrics`)).text();
  const l = text.split('\n').find((x) => x.startsWith(`${line} `));
  return l ? Number(l.slice(line.length + 1)) : 0;
}

async function run(historySize: number): Promise<{ before: number; after: number; kept: number; charged: number }> {
  const [port, sub, pub, cmd] = await freePorts(4);
  const http = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, [CLI, 'serve'], {
    env: {
      PATH: process.env['PATH'] ?? '',
      TIDINGS_LOG_LEVEL: 'warn',
      TIDINGS_SERVER_PORT: String(port),
      TIDINGS_EDGE_ENABLED: 'false',
      TIDINGS_SUBSCRIBER_ADDRESS: `tcp://127.0.0.1:${sub}`,
      TIDINGS_PUBLISHER_ADDRESS: `tcp://127.0.0.1:${pub}`,
      TIDINGS_COMMAND_ADDRESS: `tcp://127.0.0.1:${cmd}`,
      TIDINGS_HISTORY_SIZE: String(historySize),
      TIDINGS_HISTORY_CHANNEL_BYTES: String(2 ** 30),
      TIDINGS_HISTORY_TOTAL_BYTES: String(2 ** 30),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch(`${http}/healthz`)).ok) break;
      } catch {
        /* not up yet */
      }
      await sleep(100);
    }
    await sleep(1000);
    const before = rssMb(proc.pid!);
    const publisher = new Publisher({ address: `tcp://127.0.0.1:${pub}` });
    publisher.start();
    await publisher.waitReady(10_000);
    const text = 'x'.repeat(Math.max(0, SIZE - 10));
    for (let i = 0; i < MESSAGES; i++) {
      await publisher.publish('bench.history', { t: text });
      if (i % 500 === 499) await publisher.flush(60_000);
    }
    await publisher.flush(60_000);
    await publisher.close();
    // Wait until the director has sequenced every message, then let it settle.
    for (let i = 0; i < 600 && (await metric(http, 'tidings_director_published_total{target="channel"}')) < MESSAGES; i++) await sleep(200);
    await sleep(3000);
    return {
      before,
      after: rssMb(proc.pid!),
      kept: await metric(http, 'tidings_director_history_messages'),
      charged: await metric(http, 'tidings_director_history_bytes'),
    };
  } finally {
    proc.kill('SIGKILL');
  }
}

const kept = await run(10_000_000);
const none = await run(0);
console.log(`${MESSAGES} messages of ${SIZE} B of data, one channel:`);
console.log(`  with history:     RSS ${kept.before.toFixed(0)} -> ${kept.after.toFixed(0)} MB, ${kept.kept} messages kept, ${(kept.charged / 1e6).toFixed(1)} MB charged`);
console.log(`  history_size 0:   RSS ${none.before.toFixed(0)} -> ${none.after.toFixed(0)} MB`);
const history = kept.after - kept.before - (none.after - none.before);
console.log(`  history's share:  ${history.toFixed(0)} MB = ${((history * 2 ** 20) / kept.charged).toFixed(2)} bytes of RSS per charged byte`);
process.exit(0);
