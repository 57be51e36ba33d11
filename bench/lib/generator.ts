/**
 * The parent side of the load generator: forks generator processes, gives
 * each a share of the subscribers, follows their progress (for the
 * publisher's credit window and the progress line) and merges their results.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import * as hdr from 'hdr-histogram-js';
import type { SubscriberTarget } from './protocols.js';
import { closeWorker, type FromWorker, type ToWorker } from './ipc.js';

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'gen-worker.js');

export interface GeneratorResult {
  received: number;
  loss: number;
  worstSubscriberLoss: number;
  outOfOrder: number;
  /** Messages of channels the subscriber never joined. */
  foreign: number;
  histogram: hdr.Histogram;
  /** Per message, the latency of its first delivery to any subscriber (when tracked). */
  first: hdr.Histogram;
}

function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: 3 });
}

interface WorkerState {
  child: ChildProcess;
  minSeq: number;
  received: number;
  waiters: Array<(m: FromWorker) => void>;
}

export class Generator {
  private workers: WorkerState[] = [];

  /**
   * Fork `processes` generator processes and give each its share of the
   * subscribers (round-robin); with a token secret each signs the tokens of
   * its subscribers that name a user. Nothing connects yet.
   */
  async prepare(targets: SubscriberTarget[], channels: number[][], processes: number, base: number, tokenSecret?: string): Promise<void> {
    for (let w = 0; w < processes; w++) {
      const child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
      const state: WorkerState = { child, minSeq: 0, received: 0, waiters: [] };
      child.on('message', (m: FromWorker) => {
        if (m.ev === 'progress') {
          state.minSeq = m.minSeq;
          state.received = m.received;
          return;
        }
        state.waiters.shift()?.(m);
      });
      this.workers.push(state);
    }
    const prepared = this.workers.map((state, w) => {
      const mine = targets.map((_, i) => i).filter((i) => i % processes === w);
      const reply = this.next(state, 120_000);
      this.tell(state, { cmd: 'prepare', base, targets: mine.map((i) => targets[i]!), channels: mine.map((i) => channels[i]!), ...(tokenSecret !== undefined ? { tokenSecret } : {}) });
      return reply;
    });
    for (const m of await Promise.all(prepared)) if (m.ev !== 'prepared') throw new Error('generator: unexpected reply');
  }

  /**
   * Open every prepared subscriber (`concurrency` handshakes in flight per
   * process); resolves when every one is subscribed, with the time each took
   * from opening its socket to its subscriptions confirmed (µs).
   */
  async open(timeoutMs = 60_000, concurrency = 100): Promise<hdr.Histogram> {
    const opened = this.workers.map((state) => {
      const reply = this.next(state, timeoutMs + 5000);
      this.tell(state, { cmd: 'open', concurrency, timeoutMs });
      return reply;
    });
    const times = newHistogram();
    for (const m of await Promise.all(opened)) {
      if (m.ev !== 'opened') throw new Error('generator: unexpected reply');
      if (m.failed > 0) throw new Error(`generator: ${m.failed} subscribers failed to open: ${m.error}`);
      times.add(hdr.decodeFromCompressedBase64(m.connectHistogram));
    }
    return times;
  }

  /** Reset counts and latencies; with trackFirst, also keep each message's first delivery. */
  start(progressMs = 20, trackFirst = false): void {
    for (const w of this.workers) {
      w.minSeq = 0;
      w.received = 0;
      this.tell(w, { cmd: 'start', progressMs, trackFirst });
    }
  }

  /** Lowest sequence number every subscriber has reached (as last reported). */
  get minSeq(): number {
    let m = Infinity;
    for (const w of this.workers) m = Math.min(m, w.minSeq);
    return m === Infinity ? 0 : m;
  }

  get received(): number {
    let n = 0;
    for (const w of this.workers) n += w.received;
    return n;
  }

  async finish(expected: number[]): Promise<GeneratorResult> {
    const replies = await Promise.all(
      this.workers.map((w) => {
        const r = this.next(w, 30_000);
        this.tell(w, { cmd: 'finish', expected });
        return r;
      }),
    );
    const histogram = newHistogram();
    const firstByMessage = new Map<number, number>();
    const out: GeneratorResult = { received: 0, loss: 0, worstSubscriberLoss: 0, outOfOrder: 0, foreign: 0, histogram, first: newHistogram() };
    for (const m of replies) {
      if (m.ev !== 'result') throw new Error('generator: unexpected reply');
      out.received += m.received;
      out.loss += m.loss;
      out.worstSubscriberLoss = Math.max(out.worstSubscriberLoss, m.worstSubscriberLoss);
      out.outOfOrder += m.outOfOrder;
      out.foreign += m.foreign;
      histogram.add(hdr.decodeFromCompressedBase64(m.histogram));
      for (let i = 0; i < m.first.length; i += 2) {
        const seen = firstByMessage.get(m.first[i]!);
        if (seen === undefined || m.first[i + 1]! < seen) firstByMessage.set(m.first[i]!, m.first[i + 1]!);
      }
    }
    for (const lat of firstByMessage.values()) out.first.recordValue(lat);
    return out;
  }

  /** Ends every generator process, by its own PID. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => closeWorker(w.child, () => this.tell(w, { cmd: 'close' }))));
    this.workers = [];
  }

  get pids(): number[] {
    return this.workers.map((w) => w.child.pid!);
  }

  private tell(w: WorkerState, msg: ToWorker): void {
    if (w.child.connected) w.child.send(msg);
  }

  private next(w: WorkerState, timeoutMs: number): Promise<FromWorker> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`generator process ${w.child.pid} did not answer in ${timeoutMs} ms`)), timeoutMs);
      w.waiters.push((m) => {
        clearTimeout(t);
        resolve(m);
      });
      w.child.once('exit', (code) => reject(new Error(`generator process exited (${code})`)));
    });
  }
}
