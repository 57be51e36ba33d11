/**
 * One process of the reconnect-storm bench's clients (bench/storm.ts), each
 * a raw `ws` client of the native protocol with its own JWT.
 *
 * - live clients stay on the surviving node: each push's latency goes into
 *   the histogram of the phase it arrives in (calm, storm);
 * - storm clients sit on the node that dies. When their socket closes they
 *   wait the SDK's first retry delay (src/client/backoff.ts, defaults: 0.9-1 s),
 *   connect to the surviving node with the same token and subscribe with
 *   `recover` from the last message they got. A client counts as recovered
 *   once the reply has come and every missed message up to its offset with it.
 *
 * Every client checks its channel's offsets: a hole or a repeat is counted.
 */
import WebSocket from 'ws';
import * as hdr from 'hdr-histogram-js';
import { signToken } from '../../src/auth/sign.js';
import { DEFAULT_RETRY, retryDelay } from '../../src/client/backoff.js';
import { nowMicros, PAYLOAD_HEAD } from './payload.js';

export type StormToWorker =
  | { cmd: 'open'; role: 'live' | 'storm'; url: string; failoverUrl: string; users: string[]; channels: string[]; secret: string; base: number }
  | { cmd: 'phase'; phase: 'calm' | 'storm' | 'after' }
  | { cmd: 'report' }
  | { cmd: 'close' };

export type StormFromWorker =
  | { ev: 'opened'; failed: number; error: string }
  | { ev: 'recovered'; count: number }
  | {
      ev: 'report';
      /** Live clients: latency histograms (µs) by phase. */
      latency: Record<string, string>;
      /** Storm clients: µs from the first close seen to recovered, and to the subscribe reply, per client. */
      recoveredAfter: string;
      subscribedAfter: string;
      /** Storm clients not recovered (yet). */
      pending: number;
      recoveredFalse: number;
      gaps: number;
      repeats: number;
      reconnects: number;
      failedReconnects: number;
      firstError: string;
    };

interface Client {
  user: string;
  token: string;
  channel: string;
  ws: WebSocket | null;
  offset: number;
  epoch: string;
  /** Storm clients: when its socket closed (µs), and the offset the recovery must reach. */
  closedAt: number;
  target: number;
  recovered: boolean;
  /** Reconnect attempts so far (the SDK's backoff grows with them). */
  retries: number;
}

const newHistogram = (): hdr.Histogram => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
const latency: Record<string, hdr.Histogram> = { calm: newHistogram(), storm: newHistogram(), after: newHistogram() };
const recoveredAfter = newHistogram();
const subscribedAfter = newHistogram();
let phase: 'calm' | 'storm' | 'after' | null = null;
let base = 0;
let role: 'live' | 'storm' = 'live';
let failoverUrl = '';
let closing = false;
const clients: Client[] = [];
const stats = { recoveredFalse: 0, gaps: 0, repeats: 0, reconnects: 0, failedReconnects: 0, firstError: '' };
let recoveredCount = 0;
let recoveredTimer: NodeJS.Timeout | null = null;

function send(msg: StormFromWorker): void {
  process.send!(msg);
}

const OFFSET = /"offset":(\d+),"epoch":"([^"]*)"/;

function onPush(c: Client, line: string, now: number): void {
  const m = OFFSET.exec(line);
  if (!m) return;
  const offset = Number(m[1]);
  if (m[2] === c.epoch) {
    if (offset <= c.offset) stats.repeats++;
    else if (offset !== c.offset + 1) stats.gaps++;
  }
  c.offset = Math.max(offset, m[2] === c.epoch ? c.offset : 0);
  c.epoch = m[2]!;
  if (role === 'live' && phase) {
    PAYLOAD_HEAD.lastIndex = 0;
    const p = PAYLOAD_HEAD.exec(line);
    if (p) latency[phase]!.recordValue(Math.max(0, now - Number(p[3])));
  }
  if (!c.recovered && c.target > 0 && c.offset >= c.target) markRecovered(c, now);
}

function markRecovered(c: Client, now: number): void {
  c.recovered = true;
  recoveredAfter.recordValue(Math.max(1, now - c.closedAt));
  recoveredCount++;
  // Tell the parent in batches, so it knows when the storm is over.
  recoveredTimer ??= setTimeout(() => {
    recoveredTimer = null;
    send({ ev: 'recovered', count: recoveredCount });
  }, 20);
}

/** Connect, subscribe (recovering from the client's position when it has one); resolves on the subscribe reply. */
function attach(c: Client, url: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    c.ws = ws;
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no subscribe reply within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('close', () => {
      clearTimeout(timer);
      reject(new Error('closed before subscribed'));
      if (ws === c.ws) onClosed(c);
    });
    ws.on('open', () => ws.send(JSON.stringify({ id: 1, method: 'connect', params: { token: c.token } })));
    ws.on('message', (data: Buffer) => {
      const now = nowMicros(base);
      for (const line of data.toString('utf8').split('\n')) {
        if (line.startsWith('{"type":"message"')) onPush(c, line, now);
        else if (line.startsWith('{"type":"ping"')) ws.send('{"type":"pong"}');
        else if (line.startsWith('{"id":1,')) {
          if (!line.includes('"result"')) return reject(new Error(`connect failed: ${line.slice(0, 200)}`));
          const params = c.epoch ? { channel: c.channel, recover: { offset: c.offset, epoch: c.epoch } } : { channel: c.channel };
          ws.send(JSON.stringify({ id: 2, method: 'subscribe', params }));
        } else if (line.startsWith('{"id":2,')) {
          clearTimeout(timer);
          const r = /"offset":(\d+),"epoch":"([^"]*)"/.exec(line);
          if (!line.includes('"result"') || !r) return reject(new Error(`subscribe failed: ${line.slice(0, 200)}`));
          if (line.includes('"recovered":false')) stats.recoveredFalse++;
          if (!c.epoch) {
            c.offset = Number(r[1]);
            c.epoch = r[2]!;
          } else if (c.closedAt > 0) {
            c.target = Number(r[1]);
            subscribedAfter.recordValue(Math.max(1, now - c.closedAt));
            if (c.offset >= c.target) markRecovered(c, now);
          }
          resolve();
        }
      }
    });
  });
}

function onClosed(c: Client): void {
  // Before the calm phase the opening loop (open) retries its own failures.
  if (closing || role !== 'storm' || phase === null) return;
  c.ws = null;
  if (c.closedAt === 0) c.closedAt = nowMicros(base);
  const delayMs = retryDelay(c.retries++, DEFAULT_RETRY) * 1000;
  setTimeout(() => {
    stats.reconnects++;
    attach(c, failoverUrl, 60_000).catch((err: Error) => {
      stats.failedReconnects++;
      stats.firstError ||= err.message;
    });
  }, delayMs);
}

async function open(msg: Extract<StormToWorker, { cmd: 'open' }>): Promise<void> {
  base = msg.base;
  role = msg.role;
  failoverUrl = msg.failoverUrl;
  for (const [i, user] of msg.users.entries()) {
    const channel = msg.channels[i]!;
    clients.push({ user, channel, token: await signToken({ secret: msg.secret, user, ttl: 3600, subscribe: [channel] }), ws: null, offset: 0, epoch: '', closedAt: 0, target: 0, recovered: false, retries: 0 });
  }
  let next = 0;
  let failed = 0;
  let error = '';
  const worker = async (): Promise<void> => {
    while (next < clients.length) {
      const c = clients[next++]!;
      // A refused upgrade (503 overloaded, while the node is busy) is tried again after the SDK's backoff, as the SDK would.
      for (let attempt = 0; ; attempt++) {
        const err = await attach(c, msg.url, 60_000).then(
          () => null,
          (e: Error) => e,
        );
        if (err === null) break;
        if (attempt >= 10 || !err.message.includes('503')) {
          failed++;
          error ||= err.message;
          break;
        }
        await new Promise((r) => setTimeout(r, retryDelay(attempt, DEFAULT_RETRY) * 1000));
      }
    }
  };
  await Promise.all(Array.from({ length: 100 }, worker));
  send({ ev: 'opened', failed, error });
}

process.on('message', (msg: StormToWorker) => {
  switch (msg.cmd) {
    case 'open':
      void open(msg);
      return;
    case 'phase':
      phase = msg.phase;
      return;
    case 'report':
      send({
        ev: 'report',
        latency: Object.fromEntries(Object.entries(latency).map(([k, h]) => [k, hdr.encodeIntoCompressedBase64(h)])),
        recoveredAfter: hdr.encodeIntoCompressedBase64(recoveredAfter),
        subscribedAfter: hdr.encodeIntoCompressedBase64(subscribedAfter),
        pending: role === 'storm' ? clients.filter((c) => !c.recovered).length : 0,
        ...stats,
      });
      return;
    case 'close':
      closing = true;
      for (const c of clients) c.ws?.terminate();
      setTimeout(() => process.exit(0), 100);
      return;
  }
});
