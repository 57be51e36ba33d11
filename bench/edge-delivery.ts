/**
 * What an edge's JavaScript costs per channel message on the delivery path,
 * alone: the edge's own Hub, Outbox and FlushScheduler of a build (its
 * dist/), in a fresh process per run, given small-rooms-sized message
 * batches (230 pushes of about 230 bytes, one channel) for `--subs` JSON
 * subscribers whose sockets are stand-ins that take every write (no
 * kernel, no ZeroMQ: those are measured by the cluster bench and by
 * forwarder-hop). Each batch goes through the hub's dispatch as if received,
 * then one flush, as in one turn of the edge's loop. CPU per message is
 * process CPU over the messages, first for the process' first batches
 * (`cold`: the code not yet compiled, as in the short cluster bench) and then
 * in steady state. `--tier baseline` runs the children with V8's optimising
 * compilers off (--max-opt=1), the tier the bench's short runs mostly leave
 * the edge's code in.
 *
 *   node dist/bench/edge-delivery.js [--builds dirA,dirB] [--repeat 5] [--entries 230] [--subs 5] [--tier baseline]
 *
 * With several builds, runs alternate between them (A B A B ...); the summary
 * gives each build's medians and their ratio to the first build's.
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { textFlag } from './lib/flags.js';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const flag = (name: string, dflt: string): string => textFlag(args, name) ?? dflt;

interface Result {
  cold: number;
  hot: number;
}

/** The measurement, in a child process: the build's own modules, fresh. */
async function child(build: string, entries: number, subs: number): Promise<Result> {
  const load = async (path: string): Promise<Record<string, unknown>> => (await import(pathToFileURL(resolve(build, path)).href)) as Record<string, unknown>;
  type Ctor = new (...a: unknown[]) => Record<string, unknown>;
  const { Hub } = (await load('dist/src/edge/hub.js')) as { Hub: Ctor };
  const { Outbox, FlushScheduler } = (await load('dist/src/edge/outbox.js')) as { Outbox: Ctor; FlushScheduler: Ctor };
  const { encodeMessageBatch } = (await load('dist/src/cluster/batch.js')) as { encodeMessageBatch: (o: number[], p: Buffer[]) => Buffer };
  const { encodeHeader } = (await load('dist/src/cluster/wire.js')) as { encodeHeader: (k: number, o: number, e: string) => Buffer };
  const { channelTopic } = (await load('dist/src/cluster/topics.js')) as { channelTopic: (c: string) => Buffer };
  const { Registry } = (await import('prom-client')) as unknown as { Registry: new () => unknown };
  const { pino } = await import('pino');

  const scheduler = new FlushScheduler(1);
  const noteMessage = scheduler['noteMessage'] as (n: number) => void;
  const fail = (what: string) => (): never => {
    throw new Error(what);
  };
  const hub = new Hub({
    subscriberAddress: 'tcp://127.0.0.1:1',
    link: { curve: null, maxMessageSize: 1 << 26 },
    edgeId: 'bench',
    highWaterMark: 1000,
    probeTimeoutMs: 1000,
    commands: {},
    log: pino({ level: 'silent' }),
    registry: new Registry(),
    onControl: () => undefined,
    loops: { failed: fail('a delivery failed') },
    onChannelMessage: (n: number) => noteMessage.call(scheduler, n),
  });
  let written = 0;
  const listeners = new Set<unknown>();
  for (let i = 0; i < subs; i++) {
    const socket = { writableLength: 0, destroyed: false, write: (b: Buffer) => ((written += b.length), true) };
    const box = new Outbox(socket, 1 << 30, { onOverflow: fail('overflow') }, scheduler);
    const push = box['push'] as (q: unknown) => void;
    listeners.add({ deliver: (p: unknown) => push.call(box, p), deliverRun: (r: unknown) => push.call(box, r), onGap: fail('gap') });
  }
  // A live channel as the hub keeps it once its probe came back (Hub.entryFor + the probe), without a director.
  const channel = 'room-0';
  const epoch = 'e1';
  (hub['channels'] as Map<string, unknown>).set(channel, { kind: 'channel', name: channel, probeName: channel, listeners, live: true, offset: 0, epoch, tokens: new Set(), failed: null });
  const dispatch = (hub['dispatch'] as (t: Buffer, h: Buffer, b: Buffer) => void).bind(hub);
  const flush = scheduler['run'] as () => void;
  const topic = channelTopic(channel);
  let next = 1;
  const batch = (): Buffer[] => {
    const offsets: number[] = [];
    const pushes: Buffer[] = [];
    for (let i = 0; i < entries; i++, next++) {
      offsets.push(next);
      pushes.push(Buffer.from(`{"type":"message","channel":"${channel}","offset":${next},"epoch":"${epoch}","sender":null,"time":1764640000000,"data":${JSON.stringify({ seq: next, pad: 'x'.repeat(96) })}}`));
    }
    return [topic, encodeHeader(6, offsets[0]!, epoch), encodeMessageBatch(offsets, pushes)];
  };
  /** ns of process CPU per message over `count` batches made beforehand. */
  const measure = (count: number): number => {
    const batches = Array.from({ length: count }, batch);
    const t0 = process.cpuUsage();
    for (const [t, h, b] of batches) {
      dispatch(t!, h!, b!);
      flush();
    }
    const t = process.cpuUsage(t0);
    return ((t.user + t.system) * 1000) / (count * entries);
  };
  const cold = measure(20);
  for (let i = 0; i < 10; i++) measure(200);
  const hot: number[] = [];
  for (let i = 0; i < 5; i++) hot.push(measure(400));
  hot.sort((a, b) => a - b);
  const expected = next - 1;
  if (written === 0 || (hub['channels'] as Map<string, { offset: number }>).get(channel)!.offset !== expected) throw new Error('not every message was delivered');
  return { cold, hot: hot[2]! };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  if (args[0] === '--child') {
    const r = await child(args[1]!, Number(args[2]), Number(args[3]));
    process.stdout.write(JSON.stringify(r));
    return;
  }
  const builds = flag('builds', resolve(here, '..', '..')).split(',').map((b) => resolve(b));
  const repeat = Number(flag('repeat', '5'));
  const entries = Number(flag('entries', '230'));
  const subs = Number(flag('subs', '5'));
  const baseline = flag('tier', 'optimised') === 'baseline';
  const self = fileURLToPath(import.meta.url);
  console.log(`edge delivery alone: batches of ${entries} messages, ${subs} subscribers, ${baseline ? 'baseline tier (--max-opt=1)' : 'all tiers'}; ns of CPU per message`);
  const results = new Map<string, Result[]>(builds.map((b) => [b, []]));
  for (let i = 0; i < repeat; i++) {
    for (const build of builds) {
      const load = loadavg()[0]!;
      const run = spawnSync(process.execPath, [...(baseline ? ['--max-opt=1'] : []), self, '--child', build, String(entries), String(subs)], { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`${build}: ${run.stderr}`);
      const r = JSON.parse(run.stdout) as Result;
      results.get(build)!.push(r);
      console.log(`${build}: cold ${r.cold.toFixed(0)} ns/msg, steady ${r.hot.toFixed(0)} ns/msg (load ${load.toFixed(1)})`);
    }
  }
  const first = results.get(builds[0]!)!;
  for (const [build, rs] of results) {
    const cold = median(rs.map((r) => r.cold));
    const hot = median(rs.map((r) => r.hot));
    console.log(
      `${build}: median cold ${cold.toFixed(0)}, steady ${hot.toFixed(0)} ns/msg; x first build: cold ${(cold / median(first.map((r) => r.cold))).toFixed(2)}, steady ${(hot / median(first.map((r) => r.hot))).toFixed(2)}`,
    );
  }
}

await main();
