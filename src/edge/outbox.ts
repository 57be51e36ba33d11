/**
 * Coalesced writes: frames for a socket are collected during one turn of the
 * event loop and written together, so a burst of messages costs one system
 * call per socket instead of one per message.
 *
 * The sockets of one channel mostly receive the very same frames in a turn.
 * The FlushScheduler therefore joins a socket's pending frames into one buffer
 * once per distinct sequence and per turn, and every socket with that sequence
 * writes the shared buffer: one write of one buffer per socket, no per-socket
 * copy. Consecutive push frames are merged into one text frame with the JSON
 * objects separated by "\n" (allowed by the protocol), which also spares the
 * client a frame per message.
 */
import type { Socket } from 'node:net';
import { CloseCodes, type CloseSpec } from '../protocol/errors.js';
import { linesFrame, type LineItem } from './frames.js';

const isLine = (q: Queued): q is LineItem => !Buffer.isBuffer(q);

/**
 * What an outbox queues: a frame, or a push or run of pushes (JSON clients)
 * whose frame is only built at the flush, merged with the pushes around it.
 */
export type Queued = Buffer | LineItem;

/** Bytes a queued item stands for: its frame's, or its pushes' frames were they sent alone (a merged one takes less). */
function queuedBytes(q: Queued): number {
  return isLine(q) ? q.jsonFrameBytes : q.length;
}

/**
 * How long a closing connection waits for the client's close frame before the
 * socket is cut. A slow consumer gets longer: its close frame (4005) is queued
 * behind what its socket already held (at most MAX_WRITE of ours plus the
 * kernel's buffers), and a client that resumes reading within this time
 * reads those, then the close frame, and knows why it was cut.
 */
export function closeGraceMs(spec: CloseSpec | number): number {
  return (typeof spec === 'number' ? spec : spec.code) === CloseCodes.SLOW_CONSUMER.code ? 10_000 : 2000;
}

export interface OutboxOwner {
  /** Called when the bytes waiting for this socket pass the limit. */
  onOverflow(): void;
}

/** Largest merged text frame; bigger runs of pushes stay separate frames (still one write). */
const MAX_MERGED_PAYLOAD = 256 * 1024;
/**
 * Most bytes handed to a socket in one write, and the most its own buffer may
 * hold before frames stay here until it drains. A client that reads keeps its
 * socket's buffer far below this (the kernel takes the writes), so its frames
 * go out every flush as before; a slow consumer's pile up here, and when it is
 * cut off they are dropped: its close frame (4005) follows at most about
 * twice this, not the whole send buffer.
 */
const MAX_WRITE = 256 * 1024;
/** Longest wait between flushes under load, whatever the last flush took. */
const MAX_GAP_MS = 50;
/**
 * Channel messages one flush must carry before the gap grows: more than a
 * steady rate's one or two (a flush that ran late), which waiting would only
 * delay, and fewer than a receive side that is really behind brings.
 */
const BEHIND_MESSAGES = 4;

export class Outbox {
  /** Reused from turn to turn; the scheduler copies it when it keeps it. */
  private readonly frames: Queued[] = [];
  private bytes = 0;
  private scheduled = false;
  /** The scheduler's direct pass this outbox last wrote in (at most one write per pass; later items queue). */
  private directPass = 0;
  /** Waiting for the socket's 'drain' before writing more. */
  private draining = false;
  closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly limit: number,
    private readonly owner: OutboxOwner,
    private readonly scheduler: FlushScheduler,
  ) {}

  /** Bytes queued here and in the socket's own buffer. */
  get pending(): number {
    return this.bytes + this.socket.writableLength;
  }

  /** Queue a frame, or a push for a JSON client (its frame built at the flush, merged with its neighbours). */
  push(item: Queued): void {
    if (!this.grow(queuedBytes(item))) return;
    const pass = this.scheduler.directPass;
    if (pass !== 0 && this.directPass !== pass && this.frames.length === 0 && !this.scheduled && !this.draining && !this.socket.destroyed && this.socket.writableLength < MAX_WRITE) {
      // An idle edge writes a channel message as it delivers it (FlushScheduler.noteMessage): nothing waits here.
      this.directPass = pass;
      this.bytes = 0;
      const out = frameOf(item);
      this.scheduler.sentBytes += out.length;
      this.socket.write(out);
      return;
    }
    this.frames.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      this.scheduler.schedule(this);
    }
  }

  /** The item queued last and not written yet, if any: one that may still grow (grow). */
  lastQueued(): Queued | undefined {
    return this.frames[this.frames.length - 1];
  }

  /**
   * Count `size` more bytes against the limit: for a new item (push), or for
   * the last item queued (lastQueued), which is about to grow by them (a
   * reply line merged into a client's replies, reply-lines.ts). False when
   * closed, or when that passes the limit (the owner is told).
   */
  grow(size: number): boolean {
    if (this.closed) return false;
    if (this.bytes + this.socket.writableLength + size > this.limit) {
      this.owner.onOverflow();
      return false;
    }
    this.bytes += size;
    return true;
  }

  flush(): void {
    this.scheduled = false;
    const frames = this.frames;
    if (frames.length === 0 || this.closed || this.socket.destroyed) {
      frames.length = 0;
      this.bytes = 0;
      return;
    }
    // The socket's buffer is full (the client reads slowly): keep the frames here until it drains.
    if (this.socket.writableLength >= MAX_WRITE) {
      this.waitDrain();
      return;
    }
    if (this.bytes <= MAX_WRITE) {
      const out = frames.length === 1 ? frameOf(frames[0]!) : this.scheduler.joined(frames);
      frames.length = 0;
      this.bytes = 0;
      this.scheduler.sentBytes += out.length;
      this.socket.write(out);
      return;
    }
    // A backlog: write its first MAX_WRITE bytes (whole frames, at least one), the rest after 'drain'.
    let n = 0;
    let size = 0;
    while (n < frames.length && (n === 0 || size + queuedBytes(frames[n]!) <= MAX_WRITE)) size += queuedBytes(frames[n++]!);
    const batch = frames.splice(0, n);
    this.bytes -= size;
    // Shared as a turn's frames are: sockets behind by the same frames (a saturated channel's subscribers,
    // whose flushes all carry more than MAX_WRITE) split them alike and write one buffer, joined once.
    const out = batch.length === 1 ? frameOf(batch[0]!) : this.scheduler.joined(batch);
    this.scheduler.sentBytes += out.length;
    this.socket.write(out);
    if (this.socket.writableLength >= MAX_WRITE) this.waitDrain();
    else this.reschedule();
  }

  /** Write everything queued now, whatever the socket holds (before a close frame that must follow it). */
  flushAll(): void {
    const frames = this.frames;
    if (frames.length > 0 && !this.closed && !this.socket.destroyed) {
      const out = frames.length === 1 ? frameOf(frames[0]!) : joinFrames(frames);
      this.scheduler.sentBytes += out.length;
      this.socket.write(out);
    }
    frames.length = 0;
    this.bytes = 0;
  }

  /** 'drain' comes once the socket's buffer is empty (its write had returned false: the buffer is past 16 KiB). */
  private waitDrain(): void {
    if (this.draining) return;
    this.draining = true;
    this.socket.once('drain', () => {
      this.draining = false;
      this.reschedule();
    });
  }

  private reschedule(): void {
    if (this.closed || this.scheduled || this.frames.length === 0) return;
    this.scheduled = true;
    this.scheduler.schedule(this);
  }

  /** Drop what is queued here; nothing more is accepted. */
  close(): void {
    this.closed = true;
    this.frames.length = 0;
    this.bytes = 0;
  }

  /**
   * Resolves true once at most `bytes` wait for this socket (here and in its
   * own buffer), false if it closes or `timeoutMs` passes first. Flow control
   * for bulk writers (history pages): write the next part only when this
   * resolves, so it never pushes the client past its send buffer.
   */
  whenBelow(bytes: number, timeoutMs: number): Promise<boolean> {
    if (this.closed || this.socket.destroyed) return Promise.resolve(false);
    if (this.pending <= bytes) return Promise.resolve(true);
    return new Promise((resolve) => {
      const deadline = Date.now() + timeoutMs;
      const check = (): void => {
        if (this.closed || this.socket.destroyed) done(false);
        else if (this.pending <= bytes) done(true);
        else if (Date.now() >= deadline) done(false);
      };
      // 'drain' comes when the socket's buffer empties; the timer sees the levels in between and the
      // deadline (and is all there is for sockets without events, such as a SockJS session's adapter).
      const timer = setInterval(check, 20);
      const events = typeof this.socket.on === 'function';
      const done = (ok: boolean): void => {
        clearInterval(timer);
        if (events) {
          this.socket.off('drain', check);
          this.socket.off('close', check);
        }
        resolve(ok);
      };
      if (events) {
        this.socket.on('drain', check);
        this.socket.on('close', check);
      }
    });
  }
}

interface Joined {
  frames: Queued[];
  out: Buffer;
}

/**
 * Flushes every outbox that received frames, once per event-loop turn, and
 * under load at most once per `minGapMs`: when flushes follow each other back
 * to back, waiting up to that long lets each socket's write carry more
 * messages (with many channels a socket otherwise gets one write per message).
 * An idle edge flushes on the next turn, so light traffic pays no delay.
 *
 * When the receive side is behind, the gap also grows to the time the last
 * flush took (up to MAX_GAP_MS): when writing takes most of the edge's time
 * (many channels, few subscribers each: one system call per delivery), the
 * edge keeps at least as much time for receiving, so the next flush finds
 * several messages per socket and each write carries them together, instead
 * of the writes starving the receive loop. "Behind" means the last flush
 * carried several channel messages (`noteMessage`, BEHIND_MESSAGES): at a
 * steady rate below saturation a flush carries one or two, and waiting would
 * only add latency.
 *
 * An idle edge does not wait for the end of the turn at all: when a channel
 * message arrives while nothing is queued, a flush could start now and the
 * edge has been idle at least as long as its last flush took, its delivery
 * is a flush of its own (a direct pass): each subscriber's socket is written
 * as the message reaches it, so the first one is written at once instead of
 * after the delivery to every other subscriber (about 1 ms for 1 000 of them)
 * and a setImmediate (issue 15, the first subscriber's latency). At most one
 * direct pass per turn and one write per socket per pass; what comes later in
 * the turn queues and follows with the usual gap. A busier edge keeps to the
 * end of the turn: measured at 100 msg/s x 1 000 (flushes of ~10 ms back to
 * back), passes without that condition raised the first subscriber's and the
 * p99 latency against ws-batched (4 pairs).
 */
export class FlushScheduler {
  /** Bytes written to client sockets so far (a plain count; metrics read it when scraped). */
  sentBytes = 0;
  private dirty: Outbox[] = [];
  private armed = false;
  private running = false;
  private lastRun = 0;
  /** How long the last flush took (ms). */
  private lastDuration = 0;
  /** Channel messages received since the last flush began, and how many the last flush carried. */
  private messages = 0;
  private lastMessages = 0;
  /** The open direct pass' number (outboxes write at once while it is open), 0 when none is. */
  directPass = 0;
  private passes = 0;
  /** A direct pass was opened this turn (cleared at the end of the turn). */
  private directThisTurn = false;
  private directStart = 0;
  private readonly endTurn = (): void => {
    this.directThisTurn = false;
  };

  constructor(
    private readonly minGapMs = 1,
    private readonly now: () => number = () => performance.now(),
  ) {}
  /** Joined buffers of this turn, by first frame; dropped at the end of the turn. */
  private readonly cache = new Map<Queued, Joined[]>();

  /**
   * Counts channel messages received from the cluster (whatever they fan out
   * to), before they are delivered; when the edge is idle (nothing queued, a
   * flush could start now, idle at least as long as its last flush took, none
   * direct this turn yet) their delivery opens a direct pass, closed by
   * messageDelivered.
   */
  noteMessage(count = 1): void {
    this.messages += count;
    if (this.directPass !== 0 || this.armed || this.running || this.directThisTurn) return;
    const start = this.now();
    if (start < this.lastRun + this.gapMs() || start - this.lastRun < this.lastDuration) return;
    this.directThisTurn = true;
    setImmediate(this.endTurn);
    this.directPass = ++this.passes;
    this.directStart = start;
    this.begin();
  }

  /** The messages announced by noteMessage are delivered: a direct pass ends as a flush does. */
  messageDelivered(): void {
    if (this.directPass === 0) return;
    this.directPass = 0;
    this.finish(this.directStart);
  }

  /** The wait between the end of one flush and the start of the next, in ms. */
  gapMs(): number {
    if (this.minGapMs <= 0) return 0;
    if (this.lastMessages < BEHIND_MESSAGES) return this.minGapMs;
    return Math.max(this.minGapMs, Math.min(this.lastDuration, MAX_GAP_MS));
  }

  schedule(box: Outbox): void {
    this.dirty.push(box);
    if (!this.armed) {
      this.armed = true;
      const wait = this.lastRun + this.gapMs() - this.now();
      if (wait > 0) setTimeout(this.run, wait);
      else setImmediate(this.run);
    }
  }

  /** The frames as one buffer, shared with every other socket that has the same frames this turn. */
  joined(frames: readonly Queued[]): Buffer {
    if (!this.running) return joinFrames(frames);
    const first = frames[0]!;
    const candidates = this.cache.get(first);
    if (candidates) {
      for (const c of candidates) if (sameFrames(c.frames, frames)) return c.out;
    }
    const entry: Joined = { frames: frames.slice(), out: joinFrames(frames) };
    if (candidates) candidates.push(entry);
    else this.cache.set(first, [entry]);
    return entry.out;
  }

  private readonly run = (): void => {
    this.armed = false;
    const boxes = this.dirty;
    this.dirty = [];
    this.running = true;
    this.begin();
    const start = this.now();
    try {
      for (const b of boxes) b.flush();
    } finally {
      this.running = false;
      this.cache.clear();
      this.finish(start);
    }
  };

  /** A flush (or direct pass) begins: it carries the messages received since the last one began. */
  private begin(): void {
    this.lastMessages = this.messages;
    this.messages = 0;
  }

  /** A flush (or direct pass) that began at `start` ended. */
  private finish(start: number): void {
    this.lastRun = this.now();
    this.lastDuration = this.lastRun - start;
  }
}

function sameFrames(a: readonly Queued[], b: readonly Queued[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The frame of one queued item: a push or run alone is its own frame, built once and shared by its sockets. */
function frameOf(q: Queued): Buffer {
  return isLine(q) ? q.forJson() : q;
}

/** One buffer: runs of pushes merged into single "\n"-separated text frames, frames kept as they are. */
function joinFrames(items: readonly Queued[]): Buffer {
  const parts: Buffer[] = [];
  const run: LineItem[] = [];
  let runBytes = 0;
  const endRun = (): void => {
    if (run.length === 1) parts.push(run[0]!.forJson());
    else if (run.length > 1) parts.push(linesFrame(run, 0, run.length));
    run.length = 0;
    runBytes = 0;
  };
  for (const q of items) {
    if (!isLine(q)) {
      endRun();
      parts.push(q);
      continue;
    }
    if (runBytes + q.lineBytes + 1 > MAX_MERGED_PAYLOAD && run.length > 0) endRun();
    run.push(q);
    runBytes += q.lineBytes + 1;
  }
  endRun();
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
