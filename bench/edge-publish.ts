/**
 * What an edge's JavaScript costs per acknowledged websocket publish, alone:
 * a build's (its dist/) ClientConnection, CommandClient, Outbox and
 * FlushScheduler in a fresh process per run, with the edge workers' young
 * generation (--max-semi-space-size=2, config worker_semi_space_mb) so the
 * garbage collector's share is the edge's. A connected JSON client's frames
 * of `--lines` publish commands (the bench publisher's, 100-byte data) go in
 * as ws hands them over after unmasking; the command client's publish batch
 * of the turn is taken where its send queue would send it and answered as
 * the director answers publish_batch (an outcome per publish); the client's
 * acknowledgements leave through its outbox to a stand-in socket that takes
 * every write. No kernel, no ZeroMQ, no director (the small-rooms bench
 * measures those): one round is a frame in, its batch out, the reply in and
 * the acknowledgements written, as in the edge's turns. CPU per publish is
 * process CPU over the publishes (garbage collection included), first for the
 * process' first rounds (`cold`), then in steady state; every publish must be
 * acknowledged in order under its id.
 *
 *   node dist/bench/edge-publish.js [--builds dirA,dirB] [--repeat 5] [--lines 200]
 *
 * With several builds, runs alternate between them (A B A B ...); the summary
 * gives each build's medians and their ratio to the first build's.
 */
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
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
  /** Garbage collections (scavenges) per 1 000 publishes, steady state. */
  gcPerK: number;
}

/** The measurement, in a child process: the build's own modules, fresh. */
async function child(build: string, lines: number): Promise<Result> {
  const load = async (path: string): Promise<Record<string, unknown>> => (await import(pathToFileURL(resolve(build, path)).href)) as Record<string, unknown>;
  type Ctor = new (...a: unknown[]) => Record<string, unknown>;
  const { ClientConnection } = (await load('dist/src/edge/connection.js')) as { ClientConnection: Ctor };
  const { FlushScheduler } = (await load('dist/src/edge/outbox.js')) as { FlushScheduler: Ctor };
  const { CommandClient } = (await load('dist/src/zmq/command-client.js')) as { CommandClient: Ctor };
  const { PublishEntryReader, PublishOutcomeWriter } = (await load('dist/src/cluster/batch.js')) as { PublishEntryReader: Ctor; PublishOutcomeWriter: Ctor };
  const { resolveConfig } = (await load('dist/src/config/resolve.js')) as { resolveConfig: (o: unknown) => Record<string, unknown> };
  const { pino } = await import('pino');
  const { PerformanceObserver } = await import('node:perf_hooks');

  const log = pino({ level: 'silent' });
  const fail = (what: string) => (...a: unknown[]): never => {
    throw new Error(`${what}: ${String(a[1] ?? a[0])}`);
  };
  // The command client as an edge runs it, its socket's send queue replaced by this bench (it answers as the director).
  const commands = new CommandClient({ address: 'tcp://127.0.0.1:1', timeoutMs: 10_000, maxInFlight: 1 << 20, highWaterMark: 1000, link: { curve: null, maxMessageSize: 1 << 26 }, log });
  const sent: Buffer[][] = [];
  commands['queue'] = { push: (frames: Buffer[]) => (sent.push(frames), true) };
  commands['peer'] = 'up';
  const flushCommands = (commands['flush'] as () => void).bind(commands);
  const onReply = (commands['onReply'] as (f: Buffer[]) => void).bind(commands);

  const config = resolveConfig({ env: { TIDINGS_CLIENT_MAX_INFLIGHT: String(100_000) } });
  const scheduler = new FlushScheduler(1);
  const ctx = {
    config,
    edgeId: 'bench',
    auth: { authenticate: async () => ({ user: 'bench-publisher', subscribe: ['*'], publish: ['*'], presence: [], history: ['*'], call: [], register: [], expires: null }) },
    hub: { joinUser: async () => undefined, leaveUser: () => undefined },
    commands,
    scheduler,
    metrics: { slowConsumers: { inc: fail('slow consumer') }, limited: { inc: fail('limited') } },
    loops: { failed: fail('failed') },
    extraMethods: new Map(),
    onConnected: () => undefined,
    forget: () => undefined,
    noteClosed: () => undefined,
  };
  const ws = Object.assign(new EventEmitter(), { protocol: '', pause: () => undefined, resume: () => undefined, close: fail('closed'), terminate: () => undefined });
  let acked = 0;
  let lastId = 0;
  /** What the client was sent, checked after each measurement (outside the CPU counted). */
  let written: Buffer[] = [];
  const socket = {
    writableLength: 0,
    destroyed: false,
    write: (b: Buffer): boolean => (written.push(b), true),
  };
  /** Acknowledgement lines {"id":N,"result":...}: each id must follow the one before. */
  const checkWritten = (): void => {
    for (const b of written) {
      let at = b.indexOf('{"id":');
      while (at >= 0) {
        let id = 0;
        for (let k = at + 6; b[k]! >= 0x30 && b[k]! <= 0x39; k++) id = id * 10 + b[k]! - 0x30;
        if (id !== lastId + 1 || b.indexOf('"result"', at) < 0) throw new Error(`acknowledgement ${id} after ${lastId}`);
        lastId = id;
        acked++;
        at = b.indexOf('{"id":', at + 6);
      }
    }
    written = [];
  };
  const conn = new ClientConnection('c1', ws, socket, 'json', ctx, log);
  await (conn['connect'] as (t: unknown) => Promise<unknown>).call(conn, undefined);
  const flushOutboxes = scheduler['run'] as () => void;

  const data = (seq: number): string => `["room-0",${seq},${1_764_640_000_000_000 + seq},"${'x'.repeat(62)}"]`;
  let nextId = 1;
  let offset = 0;
  const frame = (): Buffer => {
    const out: string[] = [];
    for (let i = 0; i < lines; i++, nextId++) out.push(`{"id":${nextId},"method":"publish","params":{"channel":"room-0","data":${data(nextId)}}}`);
    return Buffer.from(out.join('\n'));
  };
  /** One round: the frame in, the turn's publish batch out, the director's reply in, the acknowledgements written. */
  const round = (f: Buffer): void => {
    ws.emit('message', f, false);
    flushCommands();
    const [idBuf, , body] = sent.pop()!;
    const entries = new PublishEntryReader(body);
    const outcomes = new PublishOutcomeWriter(entries['count'] as number);
    const ok = outcomes['ok'] as (o: number, e: string) => void;
    while ((entries['next'] as () => boolean).call(entries)) ok.call(outcomes, ++offset, 'bench-epoch');
    onReply([idBuf!, Buffer.from('ok'), (outcomes['finish'] as () => Buffer).call(outcomes)]);
    flushOutboxes.call(scheduler);
  };
  let scavenges = 0;
  new PerformanceObserver((list) => {
    scavenges += list.getEntries().length;
  }).observe({ entryTypes: ['gc'] });
  /** ns of process CPU per publish over `count` rounds whose frames are made beforehand; and collections per 1 000. */
  const measure = async (count: number): Promise<{ ns: number; gcPerK: number }> => {
    const frames = Array.from({ length: count }, frame);
    // The frames' making leaves no garbage to the measurement (run with --expose-gc); the observer's entries arrive on a later turn.
    (globalThis as unknown as { gc: () => void }).gc();
    await new Promise((r) => setTimeout(r, 5));
    const gc0 = scavenges;
    const t0 = process.cpuUsage();
    for (const f of frames) round(f);
    const t = process.cpuUsage(t0);
    await new Promise((r) => setTimeout(r, 5));
    checkWritten();
    return { ns: ((t.user + t.system) * 1000) / (count * lines), gcPerK: ((scavenges - gc0) * 1000) / (count * lines) };
  };
  const cold = (await measure(20)).ns;
  for (let i = 0; i < 10; i++) await measure(100);
  const hot: Array<{ ns: number; gcPerK: number }> = [];
  for (let i = 0; i < 5; i++) hot.push(await measure(200));
  hot.sort((a, b) => a.ns - b.ns);
  if (acked !== nextId - 1) throw new Error(`${acked} of ${nextId - 1} publishes acknowledged`);
  return { cold, hot: hot[2]!.ns, gcPerK: hot[2]!.gcPerK };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  if (args[0] === '--child') {
    const r = await child(args[1]!, Number(args[2]));
    process.stdout.write(JSON.stringify(r));
    return;
  }
  const builds = flag('builds', resolve(here, '..', '..')).split(',').map((b) => resolve(b));
  const repeat = Number(flag('repeat', '5'));
  const lines = Number(flag('lines', '200'));
  const self = fileURLToPath(import.meta.url);
  console.log(`edge publish path alone: frames of ${lines} acknowledged publishes, young generation as an edge worker's; ns of CPU per publish`);
  const results = new Map<string, Result[]>(builds.map((b) => [b, []]));
  for (let i = 0; i < repeat; i++) {
    for (const build of builds) {
      const load = loadavg()[0]!;
      const run = spawnSync(process.execPath, ['--max-semi-space-size=2', '--expose-gc', self, '--child', build, String(lines)], { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`${build}: ${run.stderr}`);
      const r = JSON.parse(run.stdout) as Result;
      results.get(build)!.push(r);
      console.log(`${build}: cold ${r.cold.toFixed(0)} ns/publish, steady ${r.hot.toFixed(0)} ns/publish, ${r.gcPerK.toFixed(2)} collections per 1 000 (load ${load.toFixed(1)})`);
    }
  }
  const first = results.get(builds[0]!)!;
  for (const [build, rs] of results) {
    const cold = median(rs.map((r) => r.cold));
    const hot = median(rs.map((r) => r.hot));
    console.log(
      `${build}: median cold ${cold.toFixed(0)}, steady ${hot.toFixed(0)} ns/publish, ${median(rs.map((r) => r.gcPerK)).toFixed(2)} collections per 1 000; x first build: cold ${(cold / median(first.map((r) => r.cold))).toFixed(2)}, steady ${(hot / median(first.map((r) => r.hot))).toFixed(2)}`,
    );
  }
}

await main();
