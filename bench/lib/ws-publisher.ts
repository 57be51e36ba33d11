/**
 * Tidings over a client websocket, as a web app publishes: a connection with
 * a token that grants publish and history, `publish` commands (each one
 * acknowledged with its offset), several commands per text frame ("\n"
 * between them, as the protocol allows), written once per event-loop turn,
 * as the NATS publisher writes its PUBs. Also the bench's history check.
 */
import WebSocket from 'ws';
import { signToken } from '../../src/auth/sign.js';
import { BENCH_TOKEN_SECRET } from './servers.js';
import type { AckTally, BenchPublisher } from './publishers.js';

/** Largest frame the publisher writes: under the server's max_message_size (64 KB by default). */
const MAX_FRAME = 60_000;

interface Reply {
  id: number;
  result?: Record<string, unknown>;
  error?: { code: number; message: string };
}

/** One native-protocol client: connect with a token, then commands answered by id. */
export class TidingsWsClient {
  private nextId = 2;
  private lines: string[] = [];
  private bytes = 0;
  private armed = false;
  private readonly waiting = new Map<number, (r: Reply) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      for (const line of data.toString('utf8').split('\n')) {
        if (!line.startsWith('{"id":')) {
          if (line.includes('"type":"ping"')) ws.send('{"type":"pong"}');
          continue;
        }
        const r = JSON.parse(line) as Reply;
        const cb = this.waiting.get(r.id);
        this.waiting.delete(r.id);
        cb?.(r);
      }
    });
  }

  static async open(url: string, user: string): Promise<TidingsWsClient> {
    const token = await signToken({ secret: BENCH_TOKEN_SECRET, user, ttl: 3600, publish: ['*'], history: ['*'], subscribe: ['*'] });
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const client = new TidingsWsClient(ws);
    const r = await new Promise<Reply>((resolve) => {
      client.waiting.set(1, resolve);
      ws.send(JSON.stringify({ id: 1, method: 'connect', params: { token } }));
    });
    if (r.error) throw new Error(`connect refused: ${r.error.message}`);
    return client;
  }

  /** Queue a command; it leaves with the others of this turn in one frame. */
  command(method: string, params: Record<string, unknown> | string, onReply: (r: Reply) => void): void {
    const id = this.nextId++;
    const p = typeof params === 'string' ? params : JSON.stringify(params);
    const line = `{"id":${id},"method":"${method}","params":${p}}`;
    this.waiting.set(id, onReply);
    if (this.bytes + line.length + 1 > MAX_FRAME) this.flush();
    this.lines.push(line);
    this.bytes += line.length + 1;
    if (!this.armed) {
      this.armed = true;
      setImmediate(this.flush);
    }
  }

  request(method: string, params: Record<string, unknown>): Promise<Reply> {
    return new Promise((resolve) => this.command(method, params, resolve));
  }

  private readonly flush = (): void => {
    this.armed = false;
    if (this.lines.length === 0) return;
    this.ws.send(this.lines.join('\n'));
    this.lines = [];
    this.bytes = 0;
  };

  get waitingFor(): number {
    return this.waiting.size;
  }

  async close(): Promise<void> {
    this.flush();
    this.ws.close();
    await new Promise((r) => setTimeout(r, 20));
    this.ws.terminate();
  }
}

export async function openTidingsWsPublisher(url: string): Promise<BenchPublisher> {
  const client = await TidingsWsClient.open(url, 'bench-publisher');
  const tally: AckTally = { sent: 0, acked: 0, errors: 0, firstError: '', offsetJumps: 0 };
  const lastOffset = new Map<string, number>();
  let inFlight = 0;
  return {
    publish(channel, payload) {
      tally.sent++;
      inFlight++;
      client.command('publish', `{"channel":"${channel}","data":${payload}}`, (r) => {
        inFlight--;
        if (r.error || !r.result) {
          tally.errors++;
          tally.firstError ||= r.error ? `${r.error.code} ${r.error.message}` : 'no result';
          return;
        }
        tally.acked++;
        const offset = r.result['offset'] as number;
        const last = lastOffset.get(channel);
        if (last !== undefined && offset !== last + 1) tally.offsetJumps++;
        lastOffset.set(channel, offset);
      });
    },
    get inFlight() {
      return inFlight;
    },
    acks: () => ({ ...tally }),
    close: () => client.close(),
  };
}

/** Where each channel's stream stands: {offset, epoch} from its history (limit 1). */
export async function streamPositions(url: string, channels: string[]): Promise<Map<string, { offset: number; epoch: string }>> {
  const client = await TidingsWsClient.open(url, 'bench-history');
  try {
    const out = new Map<string, { offset: number; epoch: string }>();
    for (let i = 0; i < channels.length; i += 100) {
      const replies = await Promise.all(channels.slice(i, i + 100).map((channel) => client.request('history', { channel, limit: 1 })));
      for (const r of replies) {
        if (r.error || !r.result) throw new Error(`history failed: ${r.error?.message}`);
        out.set(r.result['channel'] as string, { offset: r.result['offset'] as number, epoch: r.result['epoch'] as string });
      }
    }
    return out;
  } finally {
    await client.close();
  }
}

/**
 * Whether every message after `from` is still in each channel's history
 * (`complete` since that position, same epoch) and the stream grew by exactly
 * `published[channel]` messages. Returns the channels that fail.
 */
export async function historyHolds(url: string, from: Map<string, { offset: number; epoch: string }>, published: Map<string, number>): Promise<string[]> {
  const client = await TidingsWsClient.open(url, 'bench-history');
  const bad: string[] = [];
  try {
    const names = [...from.keys()];
    for (let i = 0; i < names.length; i += 100) {
      const replies = await Promise.all(names.slice(i, i + 100).map((channel) => client.request('history', { channel, since: from.get(channel)!, limit: 1 })));
      for (const r of replies) {
        const channel = r.result?.['channel'] as string | undefined;
        const start = channel === undefined ? undefined : from.get(channel);
        const ok = r.result !== undefined && start !== undefined && r.result['complete'] === true && r.result['epoch'] === start.epoch && (r.result['offset'] as number) - start.offset === published.get(channel!);
        if (!ok) bad.push(channel ?? `(error ${r.error?.code} ${r.error?.message})`);
      }
    }
    return bad;
  } finally {
    await client.close();
  }
}
