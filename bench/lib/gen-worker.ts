/**
 * A load-generator process: holds many websocket subscribers, checks each
 * one's sequence (loss, reordering) and records delivery latency in an
 * HdrHistogram. Driven by its parent over IPC (see generator.ts).
 */
import * as hdr from 'hdr-histogram-js';
import type WebSocket from 'ws';
import { signToken } from '../../src/auth/sign.js';
import { openSubscriber, type SubscriberTarget } from './protocols.js';
import { PAYLOAD_HEAD, nowMicros } from './payload.js';
import type { ToWorker, FromWorker } from './ipc.js';

/** One subscription of one subscriber: its sequence check. */
interface Stream {
  last: number;
  count: number;
  outOfOrder: number;
}

interface Sub {
  streams: Map<number, Stream>;
  ws: WebSocket | null;
}

const subs: Sub[] = [];
let base = 0;
const newHistogram = (): hdr.Histogram => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
const histogram = newHistogram();
let progressTimer: NodeJS.Timeout | null = null;
let foreign = 0;
/** Per message (channel * FIRST_KEY + seq), the lowest latency seen in this process; null when not tracked. */
let first: Map<number, number> | null = null;
const FIRST_KEY = 1e7;

function send(msg: FromWorker): void {
  process.send!(msg);
}

function makeSink(sub: Sub): { onText(text: string): void } {
  return {
    onText(text: string): void {
      const now = nowMicros(base);
      PAYLOAD_HEAD.lastIndex = 0;
      let m: RegExpExecArray | null;
      while ((m = PAYLOAD_HEAD.exec(text)) !== null) {
        const stream = sub.streams.get(Number(m[1]));
        if (!stream) {
          foreign++; // a message of a channel this subscriber never joined: a leak
          continue;
        }
        const seq = Number(m[2]);
        if (seq <= stream.last) stream.outOfOrder++;
        else stream.last = seq;
        stream.count++;
        const lat = Math.max(0, now - Number(m[3]));
        histogram.recordValue(lat);
        if (first) {
          const key = Number(m[1]) * FIRST_KEY + seq;
          const seen = first.get(key);
          if (seen === undefined || lat < seen) first.set(key, lat);
        }
      }
    },
  };
}

/** One token per subscriber that names a user, signed before any socket opens (not counted as server work). */
async function signTokens(targets: SubscriberTarget[], secret: string): Promise<void> {
  for (const t of targets) {
    if (t.user !== undefined) t.token = await signToken({ secret, user: t.user, ttl: 3600, subscribe: t.channels });
  }
}

let targets: SubscriberTarget[] = [];
let channels: number[][] = [];

async function prepare(msg: Extract<ToWorker, { cmd: 'prepare' }>): Promise<void> {
  base = msg.base;
  targets = msg.targets;
  channels = msg.channels;
  if (msg.tokenSecret !== undefined) await signTokens(targets, msg.tokenSecret);
  send({ ev: 'prepared' });
}

async function open(concurrency: number, timeoutMs: number): Promise<void> {
  let next = 0;
  let failed = 0;
  let firstError = '';
  const connectTimes = newHistogram();
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      const sub: Sub = { streams: new Map(channels[i]!.map((c) => [c, { last: 0, count: 0, outOfOrder: 0 }])), ws: null };
      subs.push(sub);
      try {
        const t0 = nowMicros(base);
        sub.ws = await openSubscriber(targets[i]!, makeSink(sub), timeoutMs);
        connectTimes.recordValue(Math.max(0, nowMicros(base) - t0));
      } catch (err) {
        failed++;
        firstError ||= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  send({ ev: 'opened', count: subs.length - failed, failed, error: firstError, connectHistogram: hdr.encodeIntoCompressedBase64(connectTimes) });
}

function progress(): void {
  let minSeq = Infinity;
  let received = 0;
  for (const s of subs) {
    for (const st of s.streams.values()) {
      if (st.last < minSeq) minSeq = st.last;
      received += st.count;
    }
  }
  send({ ev: 'progress', minSeq: minSeq === Infinity ? 0 : minSeq, received });
}

process.on('message', (msg: ToWorker) => {
  switch (msg.cmd) {
    case 'prepare':
      void prepare(msg);
      return;
    case 'open':
      void open(msg.concurrency, msg.timeoutMs);
      return;
    case 'start':
      histogram.reset();
      foreign = 0;
      first = msg.trackFirst ? new Map() : null;
      for (const s of subs) {
        for (const st of s.streams.values()) {
          st.count = 0;
          st.outOfOrder = 0;
        }
      }
      progressTimer ??= setInterval(progress, msg.progressMs);
      return;
    case 'finish': {
      let loss = 0;
      let outOfOrder = 0;
      let received = 0;
      let worstSubscriberLoss = 0;
      for (const s of subs) {
        for (const [channel, st] of s.streams) {
          const missing = Math.max(0, msg.expected[channel]! - st.count);
          loss += missing;
          worstSubscriberLoss = Math.max(worstSubscriberLoss, missing);
          outOfOrder += st.outOfOrder;
          received += st.count;
        }
      }
      const firstFlat: number[] = [];
      for (const [key, lat] of first ?? []) firstFlat.push(key, lat);
      send({ ev: 'result', received, loss, worstSubscriberLoss, outOfOrder, foreign, histogram: hdr.encodeIntoCompressedBase64(histogram), first: firstFlat });
      return;
    }
    case 'close':
      if (progressTimer) clearInterval(progressTimer);
      for (const s of subs) s.ws?.terminate();
      setTimeout(() => process.exit(0), 200);
      return;
  }
});
process.on('disconnect', () => process.exit(0));
