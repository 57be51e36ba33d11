/** Messages between the bench parent and its generator processes. */
import type { SubscriberTarget } from './protocols.js';

export type ToWorker =
  | { cmd: 'open'; base: number; targets: SubscriberTarget[]; channels: number[][]; concurrency: number; timeoutMs: number }
  | { cmd: 'start'; progressMs: number }
  /** expected[i]: messages published to channel i. */
  | { cmd: 'finish'; expected: number[] }
  | { cmd: 'close' };

export type FromWorker =
  | { ev: 'opened'; count: number; failed: number; error: string }
  | { ev: 'progress'; minSeq: number; received: number }
  | { ev: 'result'; received: number; loss: number; worstSubscriberLoss: number; outOfOrder: number; foreign: number; histogram: string };
