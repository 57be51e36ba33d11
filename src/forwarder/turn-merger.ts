/**
 * The batches a forwarder receives on one path during one event-loop turn,
 * passed on as few ZeroMQ messages as they can be joined into (batch-joins.ts).
 *
 * Why: a ZeroMQ message costs every process it crosses a few thread wake-ups
 * whatever its size (the forwarder's CPU is mostly the kernel's context
 * switches and eventfd writes), and a forwarder that fell a little behind
 * finds several batches waiting at once: a publisher's turns going up, the
 * director's turns (or messages alone) going down. Joined, the director or
 * the edges receive them as one.
 *
 * Nothing waits beyond the turn they arrived in: the run leaves at its end
 * (setImmediate), or earlier when a message that cannot join it comes (that
 * one follows it: the order is kept) or it is full. A message that cannot
 * start a run is queued as it comes. Bounded: besides the send queue's own
 * limits, at most one run (the joiner's size limit) and one message waiting
 * for room; while a message waits for room, take() returns a promise and the
 * receive loop stops reading (back pressure as before).
 */
import type { Queued, SendQueue } from '../zmq/send-queue.js';
import { EndOfTurn } from '../runtime/end-of-turn.js';
import type { Joiner, Run } from './batch-joins.js';

export class TurnMerger<R extends Run> {
  private run: R | null = null;
  /** A message refused by the full queue, pushed once it has room. */
  private waiting: Promise<void> | null = null;
  private readonly endOfTurn = new EndOfTurn(() => void this.flush());
  /** ZeroMQ messages received into runs, and the messages those runs left as (for tests and benches). */
  joinedIn = 0;
  joinedOut = 0;

  constructor(
    private readonly queue: SendQueue,
    private readonly joiner: Joiner<R>,
  ) {}

  /** Pass `msg` on (joined with others of this turn when it can be); a promise while the queue has no room. */
  take(msg: Queued): Promise<void> | undefined {
    if (this.waiting) return this.waiting.then(() => this.take(msg));
    if (typeof msg !== 'function' && this.run && this.joiner.extend(this.run, msg)) return undefined;
    const flushed = this.flush();
    if (flushed) return flushed.then(() => this.begin(msg));
    return this.begin(msg);
  }

  /** Queue the current run now (as one message); a promise while the queue has no room. */
  flush(): Promise<void> | undefined {
    const run = this.run;
    if (!run) return this.waiting ?? undefined;
    this.run = null;
    if (run.messages.length === 1) return this.push(run.messages[0]!);
    this.joinedIn += run.messages.length;
    this.joinedOut++;
    return this.push(this.joiner.join(run));
  }

  private begin(msg: Queued): Promise<void> | undefined {
    const run = typeof msg === 'function' ? null : this.joiner.start(msg);
    if (!run) return this.push(msg);
    this.run = run;
    this.endOfTurn.request();
    return undefined;
  }

  private push(msg: Queued): Promise<void> | undefined {
    if (this.queue.push(msg)) return undefined;
    const waiting = this.queue.space().then(() => {
      this.queue.push(msg);
      this.waiting = null;
    });
    this.waiting = waiting;
    return waiting;
  }
}
