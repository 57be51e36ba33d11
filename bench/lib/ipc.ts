/** Messages between the bench parent and its generator processes. */
import type { ChildProcess } from 'node:child_process';
import type { SubscriberTarget } from './protocols.js';

export type ToWorker =
  /** The subscribers this process will hold; tokenSecret: sign a token for each target that names a user (Tidings). */
  | { cmd: 'prepare'; base: number; targets: SubscriberTarget[]; channels: number[][]; tokenSecret?: string }
  | { cmd: 'open'; concurrency: number; timeoutMs: number }
  /** trackFirst: also keep, per message, the latency of its first delivery in this process. */
  | { cmd: 'start'; progressMs: number; trackFirst?: boolean }
  /** expected[i]: messages published to channel i. */
  | { cmd: 'finish'; expected: number[] }
  | { cmd: 'close' };

export type FromWorker =
  | { ev: 'prepared' }
  /** connectHistogram: microseconds from opening each socket to its subscriptions confirmed. */
  | { ev: 'opened'; count: number; failed: number; error: string; connectHistogram: string }
  | { ev: 'progress'; minSeq: number; received: number }
  | { ev: 'result'; received: number; loss: number; worstSubscriberLoss: number; outOfOrder: number; foreign: number; histogram: string; first: number[] };

/**
 * Ask a worker process to close (`askClose` sends it the message) and wait
 * for its exit; killed by its PID if it has not gone within graceMs.
 */
export function closeWorker(child: ChildProcess, askClose: () => void, graceMs = 3000): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null) return resolve();
    const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    askClose();
  });
}
