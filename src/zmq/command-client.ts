/**
 * Request/reply over a DEALER socket to a command address (the director's
 * ROUTER, directly or through a forwarder). Every request has a timeout and
 * the number in flight is bounded.
 *
 * Requests made in one event-loop turn leave together as one command batch
 * (src/cluster/batch.ts) at the end of the turn, and their replies come back
 * batched; a request alone in its turn goes in the plain form. Publishes
 * (publishTextTo) made one after another go as one `publish_batch` request,
 * answered by one reply with each one's outcome: one request, one deadline
 * and one reply per batch instead of per publish; each still counts as one
 * request in flight, and any other request made after them closes the batch,
 * so the director runs every request in the order it was made.
 *
 * The client watches its connection (socket events, ZMTP heartbeats): while
 * nothing answers at the address, a request waits at most `unreachableGraceMs`
 * for it to come back and then fails at once with 113 `unavailable` ("director
 * unreachable"), instead of queueing in ZeroMQ until its timeout. A forwarder
 * does the same for the hop behind it, so a caller learns fast either way.
 */
import { Dealer } from 'zeromq';
import type { Logger } from 'pino';
import { ErrorCodes, TidingsError, errorByCode } from '../protocol/errors.js';
import { SendQueue } from './send-queue.js';
import type { LoopGuard } from '../runtime/loop-guard.js';
import { connectSecured, type ClientLink } from './security.js';
import { EndOfTurn } from '../runtime/end-of-turn.js';
import { isLinkLost } from '../cluster/link-lost.js';
import {
  MAX_BATCH_BYTES,
  MAX_BATCH_ENTRIES,
  PUBLISH_BATCH_METHOD,
  PUBLISH_TEXT_METHOD,
  PublishEntryReader,
  PublishEntryWriter,
  decodeReplyBatch,
  eachPublishOutcome,
  encodeCommandBatch,
  isBatchFrames,
  type CommandEntry,
} from '../cluster/batch.js';

/**
 * Who a request's outcome goes to: a promise's resolve and reject, or the
 * caller's own object (publishTextTo: an edge answers a publish without a
 * promise and its reactions per message).
 */
export interface ReplyTarget {
  resolve(value: unknown): void;
  reject(err: Error): void;
  /** A publish's result as the director's JSON text, body[start..end) (else resolve gets a RawJson of it). */
  resolveJson?(body: Buffer, start: number, end: number): void;
}

/**
 * A refusal reaches its target a microtask later (as a rejected promise's reactions run). A
 * function of its own: a closure in addPublish would make V8 allocate a context for `target`
 * on every call, refused or not (the edge's allocations per publish, issue 17).
 */
function rejectLater(target: ReplyTarget, err: Error): void {
  queueMicrotask(() => target.reject(err));
}

interface Pending {
  readonly id: number;
  readonly method: string;
  /**
   * Who gets the outcome; SETTLED once it has had it. `deadlines` keeps an
   * answered request until the timer reaches it (up to a timeout later), so
   * settling lets go of its target: a publish batch's (its body and every
   * publish's target) would otherwise live that long and be promoted, the
   * edge's old generation and external memory growing with every batch
   * until a full collection (issue 17).
   */
  target: ReplyTarget;
  /** When it times out (performance.now(), a monotonic clock), and after how long. */
  readonly deadline: number;
  readonly timeoutMs: number;
  /** Requests it stands for (in flight): a publish batch's publishes, else 1. */
  readonly units: number;
  /**
   * How the reply resolves: `parsed`, the result; `framed`, {result, frames}
   * (the reply's frames after the body); `raw`, a RawJson of the result's
   * JSON text, unparsed (an edge that hands it on as it is); `publishes`, a
   * publish batch's outcomes, each to its own target (PublishTargets).
   */
  mode: ReplyMode;
}

type ReplyMode = 'parsed' | 'framed' | 'raw' | 'publishes';

/** A settled request's target: nothing is kept for it, and a second outcome (there is none) would go nowhere. */
const SETTLED: ReplyTarget = {
  resolve: () => undefined,
  reject: () => undefined,
};

/** Who the publishes of a publish batch answer, in order; a failure of the whole request reaches each of them. */
class PublishTargets implements ReplyTarget {
  constructor(
    readonly list: ReplyTarget[],
    /** The batch's entries (sent again one by one to a director that does not know publish_batch). */
    readonly body: Buffer,
  ) {}

  resolve(): void {
    throw new Error('a publish batch is settled outcome by outcome');
  }

  reject(err: Error): void {
    for (const t of this.list) t.reject(err);
  }
}

/** A result as the director's JSON text, not parsed (see publishText). */
export class RawJson {
  constructor(readonly json: Buffer) {}
  parse(): unknown {
    return JSON.parse(this.json.toString('utf8'));
  }
}

/** A reply whose body is followed by raw frames (e.g. a history page's pushes). */
export interface FramedResult<T> {
  result: T;
  frames: Buffer[];
}

export interface CommandClientOptions {
  address: string;
  timeoutMs: number;
  maxInFlight: number;
  highWaterMark: number;
  /** Keys and message size limit of the socket; requests larger than its limit are refused here. */
  link: ClientLink;
  log: Logger;
  /** How long a request waits for a lost connection to come back before failing with 113 (default 1000 ms). */
  unreachableGraceMs?: number;
  /** A server's guard: a reply that fails is counted and skipped, a receive loop that dies is reported. */
  loops?: LoopGuard;
}

/** ZMTP heartbeats on the link: a peer silent this long is taken as gone even if TCP says nothing. */
export const HEARTBEAT = { heartbeatInterval: 1000, heartbeatTimeout: 3000, heartbeatTimeToLive: 3000 } as const;

export class CommandClient {
  private socket: Dealer | null = null;
  private queue: SendQueue | null = null;
  private pending = new Map<number, Pending>();
  /** Requests in flight, a publish batch counting its publishes (bounded by maxInFlight). */
  private units = 0;
  /** This turn's publishes not yet in a request (publishTextTo): their entries, and who each answers. */
  private readonly publishEntries = new PublishEntryWriter();
  private publishTargets: ReplyTarget[] = [];
  /** The director answered publish_batch 104 (a version from before it): publishes go as publish_text, one each. */
  private publishBatchRefused = false;
  /**
   * Every request in flight in order of its deadline, answered ones left in
   * place until they reach the front (or a compaction): one timer, armed for
   * the front, times them all out instead of a timer each (a saturated
   * publisher makes tens of thousands of requests a second). Requests with
   * another timeout than the client's keep a timer of their own.
   */
  private deadlines: Pending[] = [];
  private deadlinesHead = 0;
  private deadlineTimer: NodeJS.Timeout | null = null;
  /** Timers of requests with their own timeout (see deadlines). */
  private ownTimers = new Map<number, NodeJS.Timeout>();
  private nextId = 1;
  private receiving: Promise<void> | null = null;
  /** Requests of this turn, sent together at its end. */
  private outgoing: CommandEntry[] = [];
  private outgoingBytes = 0;
  private readonly endOfTurn = new EndOfTurn(() => this.flush());
  /** Whether a peer is connected at the address: unknown until the first connect or refusal. */
  private peer: 'unknown' | 'up' | 'down' = 'unknown';
  private peerWaiters: Array<() => void> = [];
  /** Set when a request failed as unavailable; cleared by the next answer. */
  private doubt = false;
  /** Told when the peer comes and goes (for logs). */
  onPeerChange: ((up: boolean) => void) | null = null;
  /** Told once when the director becomes unreachable (113) and once when it answers again. */
  onReachability: ((reachable: boolean, detail: string) => void) | null = null;
  private doubtSince = 0;
  private failedWhileDown = 0;

  constructor(private readonly opts: CommandClientOptions) {}

  start(): void {
    const socket = new Dealer({
      sendHighWaterMark: this.opts.highWaterMark,
      receiveHighWaterMark: this.opts.highWaterMark,
      linger: 0,
      ...HEARTBEAT,
    });
    socket.events.on('connect', () => this.setPeer('up'));
    socket.events.on('disconnect', () => {
      this.setPeer('down');
      // Replies come back over the connection a request went by; a reconnection is a new one.
      this.lostInFlight(new TidingsError(ErrorCodes.UNAVAILABLE, `the connection to ${this.opts.address} dropped with this request in flight: it may or may not have been carried out`));
    });
    socket.events.on('connect:retry', () => {
      if (this.peer !== 'up') this.setPeer('down');
    });
    connectSecured(socket, this.opts.address, this.opts.link);
    this.socket = socket;
    this.queue = new SendQueue(socket, this.opts.maxInFlight, this.opts.log, 'command');
    this.receiving = this.receive(socket);
  }

  /** Requests made and not yet answered, a publish counting one (in a batch or not yet sent). */
  get inFlight(): number {
    return this.units + this.publishTargets.length;
  }

  private setPeer(state: 'up' | 'down'): void {
    const was = this.peer;
    this.peer = state;
    if (was !== state) for (const w of this.peerWaiters.splice(0)) w();
    if (was !== 'unknown' && was !== state) this.onPeerChange?.(state === 'up');
  }

  private setDoubt(doubt: boolean, detail: string): void {
    if (doubt && this.doubt) this.failedWhileDown++;
    if (doubt === this.doubt) return;
    this.doubt = doubt;
    if (doubt) {
      this.doubtSince = Date.now();
      this.failedWhileDown = 1;
      this.onReachability?.(false, detail);
    } else {
      const seconds = ((Date.now() - this.doubtSince) / 1000).toFixed(1);
      this.onReachability?.(true, `after ${seconds} s; ${this.failedWhileDown} request(s) failed meanwhile`);
    }
  }

  private peerUp(): boolean {
    return this.peer === 'up';
  }

  /** Nothing answers at the address now, or the last request found the director unavailable. */
  get suspectUnreachable(): boolean {
    return this.peer === 'down' || this.doubt;
  }

  /** Until `ready()` or `ms` have passed, waking on each change of the peer's state. */
  private async waitPeerUntil(ready: () => boolean, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (!ready() && this.queue && Date.now() < deadline) await this.waitPeer(deadline - Date.now());
  }

  private waitPeer(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.peerWaiters.push(done);
    });
  }

  /** Send a command; resolves with the director's result or rejects with a TidingsError. */
  request<T = unknown>(method: string, body: unknown, timeoutMs = this.opts.timeoutMs): Promise<T> {
    if (this.peer === 'up') return this.send<T>(method, body, timeoutMs, 'parsed');
    return this.reachable(timeoutMs).then(() => this.send<T>(method, body, timeoutMs, 'parsed'));
  }

  /**
   * Publish to a channel with the data as JSON text (made by JSON.stringify of
   * a parsed value, so valid and on one line): the director takes the text as
   * it is (publish_text). Resolves with {offset, epoch} as the director's JSON
   * text, which the caller may hand on without parsing it.
   */
  publishText(channel: string, dataJson: string, sender: string | null, noHistory: boolean): Promise<RawJson> {
    return new Promise((resolve, reject) => this.publishTextTo(channel, dataJson, sender, noHistory, { resolve: resolve as (v: unknown) => void, reject }));
  }

  /**
   * publishText answering `target` (its resolve gets the RawJson): a
   * refusal before sending reaches it a microtask later, as a rejected
   * promise's would. The publish joins this turn's publish batch.
   */
  publishTextTo(channel: string, dataJson: string, sender: string | null, noHistory: boolean, target: ReplyTarget): void {
    if (this.peer === 'up') {
      this.addPublish(channel, sender, noHistory, target, dataJson, null, 0, 0);
      return;
    }
    this.addPublishWhenReachable(channel, sender, noHistory, target, dataJson, null, 0, 0);
  }

  /**
   * publishTextTo with the data as bytes, src[start..end): JSON text as UTF-8
   * (a client's frame, read in place), copied into the publish batch as it is.
   * The director checks it as JSON again (on its byte path or as text).
   */
  publishBytesTo(channel: string, src: Uint8Array, start: number, end: number, sender: string | null, noHistory: boolean, target: ReplyTarget): void {
    if (this.peer === 'up') {
      this.addPublish(channel, sender, noHistory, target, null, src, start, end);
      return;
    }
    this.addPublishWhenReachable(channel, sender, noHistory, target, null, src, start, end);
  }

  /**
   * addPublish once the director is reachable (or the refusal). Apart from the callers
   * because its closures would make them allocate a context per publish, reachable or not.
   */
  private addPublishWhenReachable(channel: string, sender: string | null, noHistory: boolean, target: ReplyTarget, text: string | null, src: Uint8Array | null, start: number, end: number): void {
    this.reachable(this.opts.timeoutMs).then(
      () => this.addPublish(channel, sender, noHistory, target, text, src, start, end),
      (err: Error) => target.reject(err),
    );
  }

  /**
   * Add a publish (its data as text, or else as src[start..end)) to the open
   * publish batch, which leaves at the end of the turn (or once full).
   */
  private addPublish(channel: string, sender: string | null, noHistory: boolean, target: ReplyTarget, text: string | null, src: Uint8Array | null, start: number, end: number): void {
    const refusal = this.refusalOf(PUBLISH_BATCH_METHOD, 0);
    if (refusal) {
      rejectLater(target, refusal);
      return;
    }
    const w = this.publishEntries;
    const before = w.bytes;
    let bytes: number;
    try {
      bytes = text !== null ? w.addText(channel, sender, noHistory, text) : w.addBytes(channel, sender, noHistory, src!, start, end);
    } catch (err) {
      const bad = new TidingsError(ErrorCodes.BAD_REQUEST, (err as Error).message);
      rejectLater(target, bad);
      return;
    }
    // The command address drops a peer that sends more than its limit: a batch stays under it, and a
    // publish too large to go even alone is refused here.
    const limit = this.opts.link.maxMessageSize - 1024;
    if (w.bytes > limit) {
      w.dropLast(before);
      if (before === 0 || bytes > limit) {
        const tooLarge = new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `publish request of ${bytes} bytes > the command link limit ${this.opts.link.maxMessageSize}`);
        rejectLater(target, tooLarge);
        return;
      }
      this.closePublishBatch();
      this.addPublish(channel, sender, noHistory, target, text, src, start, end);
      return;
    }
    this.publishTargets.push(target);
    if (w.bytes >= MAX_BATCH_BYTES || w.count >= MAX_BATCH_ENTRIES) this.closePublishBatch();
    else this.endOfTurn.request();
  }

  /** The open publish batch becomes a request (it takes its place among this turn's requests). */
  private closePublishBatch(): void {
    const targets = this.publishTargets;
    if (targets.length === 0) return;
    this.publishTargets = [];
    const body = this.publishEntries.take();
    if (this.publishBatchRefused) this.publishOneByOne(new PublishTargets(targets, body));
    else this.register(PUBLISH_BATCH_METHOD, body, this.opts.timeoutMs, 'publishes', new PublishTargets(targets, body), targets.length);
  }

  /**
   * A batch's publishes as publish_text requests, one per entry, in order:
   * for a director from before publish_batch (a cluster upgraded edges
   * first), which answers it 104. Each entry of a batch is a publish_text body.
   */
  private publishOneByOne(batch: PublishTargets): void {
    const entries = new PublishEntryReader(batch.body);
    for (let i = 0; entries.next(); i++) {
      this.register(PUBLISH_TEXT_METHOD, batch.body.subarray(entries.dataEnd - entries.bytes, entries.dataEnd), this.opts.timeoutMs, 'raw', batch.list[i]!, 1);
    }
  }

  /** As request, for replies that carry raw frames after their body. */
  requestFramed<T = unknown>(method: string, body: unknown, timeoutMs = this.opts.timeoutMs): Promise<FramedResult<T>> {
    if (this.peer === 'up') return this.send<FramedResult<T>>(method, body, timeoutMs, 'framed');
    return this.reachable(timeoutMs).then(() => this.send<FramedResult<T>>(method, body, timeoutMs, 'framed'));
  }

  /** With no connection to the director's address, wait a moment for it to come back, else fail fast with 113. */
  private async reachable(timeoutMs: number): Promise<void> {
    if (!this.queue) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'command client stopped');
    if (this.peer === 'up') return;
    // Not connected yet (a start, slow under load): wait for the connection, or for a refusal.
    await this.waitPeerUntil(() => this.peer !== 'unknown', timeoutMs);
    // Refused or lost: a short grace for a director coming back, then 113 at once.
    if (this.peer === 'down') await this.waitPeerUntil(() => this.peer === 'up', Math.min(timeoutMs, this.opts.unreachableGraceMs ?? 1000));
    if (!this.queue) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'command client stopped');
    if (!this.peerUp()) {
      const err = new TidingsError(ErrorCodes.UNAVAILABLE, `director unreachable: nothing answers at ${this.opts.address}`);
      this.setDoubt(true, err.message);
      throw err;
    }
  }

  private send<T>(method: string, body: unknown, timeoutMs: number, mode: ReplyMode): Promise<T> {
    let json: Buffer;
    try {
      json = Buffer.from(JSON.stringify(body ?? null));
    } catch (err) {
      // Only a value nested too deep for the encoder gets here (the doors refuse those first).
      const spec = err instanceof RangeError ? ErrorCodes.PAYLOAD_TOO_DEEP : ErrorCodes.INTERNAL;
      return Promise.reject(new TidingsError(spec, `${method} body could not be encoded`));
    }
    return this.sendEncoded<T>(method, json, timeoutMs, mode);
  }

  /** Send a command whose body is encoded already (JSON, or publish_text's binary entry). */
  private sendEncoded<T>(method: string, json: Buffer, timeoutMs: number, mode: ReplyMode): Promise<T> {
    return new Promise<T>((resolve, reject) => this.startRequest(method, json, timeoutMs, mode, { resolve: resolve as (v: unknown) => void, reject }));
  }

  /** Why a request of `bytes` cannot be made now, or null. */
  private refusalOf(method: string, bytes: number): TidingsError | null {
    if (!this.queue) return new TidingsError(ErrorCodes.UNAVAILABLE, 'command client stopped');
    if (this.inFlight >= this.opts.maxInFlight) return new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'too many commands in flight');
    // The command address drops a peer that sends more than its limit: refuse such a request here.
    if (bytes > this.opts.link.maxMessageSize) {
      return new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${method} request of ${bytes} bytes > the command link limit ${this.opts.link.maxMessageSize}`);
    }
    return null;
  }

  /** Send a request whose outcome goes to `target`; one refused before sending reaches it a microtask later. */
  private startRequest(method: string, json: Buffer, timeoutMs: number, mode: ReplyMode, target: ReplyTarget): void {
    const refusal = this.refusalOf(method, json.length);
    if (refusal) {
      queueMicrotask(() => target.reject(refusal));
      return;
    }
    // Publishes made before this request go before it.
    this.closePublishBatch();
    this.register(method, json, timeoutMs, mode, target, 1);
  }

  /** A request in flight from now: its id, its deadline, its place in this turn's batch. */
  private register(method: string, json: Buffer, timeoutMs: number, mode: ReplyMode, target: ReplyTarget, units: number): void {
    const id = this.nextId++;
    if (this.nextId > 0x7fffffff) this.nextId = 1;
    const p: Pending = { id, method, target, deadline: performance.now() + timeoutMs, timeoutMs, units, mode };
    this.pending.set(id, p);
    this.units += units;
    if (timeoutMs === this.opts.timeoutMs) this.trackDeadline(p);
    else this.ownTimers.set(id, setTimeout(() => this.onOwnTimer(p), timeoutMs));
    this.enqueue({ id, method, body: json });
  }

  /**
   * A request with a timeout of its own has its own timer. Node's timers count from the event loop's clock,
   * taken when the turn began, so one may fire before the deadline: then it waits again for what is left.
   */
  private onOwnTimer(p: Pending): void {
    if (this.pending.get(p.id) !== p) return;
    const left = p.deadline - performance.now();
    if (left > 0) this.ownTimers.set(p.id, setTimeout(() => this.onOwnTimer(p), left));
    else this.expire(p);
  }

  /** A request with the client's timeout: its deadline is the latest so far, so it goes at the back. */
  private trackDeadline(p: Pending): void {
    this.deadlines.push(p);
    // Answered requests wait for the front; past twice those in flight they are dropped at once (bounded memory).
    if (this.deadlines.length - this.deadlinesHead > 2 * this.pending.size + 1024) this.compactDeadlines();
    if (this.deadlineTimer === null) this.armDeadlineTimer(p.deadline);
  }

  private compactDeadlines(): void {
    this.deadlines = this.deadlines.slice(this.deadlinesHead).filter((q) => this.pending.get(q.id) === q);
    this.deadlinesHead = 0;
  }

  private armDeadlineTimer(at: number): void {
    this.deadlineTimer = setTimeout(() => this.onDeadline(), Math.max(0, at - performance.now()));
  }

  /** Time out every request due, then wait for the next one still in flight. */
  private onDeadline(): void {
    this.deadlineTimer = null;
    const now = performance.now();
    while (this.deadlinesHead < this.deadlines.length) {
      const p = this.deadlines[this.deadlinesHead]!;
      if (this.pending.get(p.id) === p) {
        if (p.deadline > now) break;
        this.expire(p);
      }
      (this.deadlines as unknown[])[this.deadlinesHead] = undefined;
      this.deadlinesHead++;
    }
    if (this.deadlinesHead === this.deadlines.length) {
      this.deadlines = [];
      this.deadlinesHead = 0;
      return;
    }
    if (this.deadlinesHead > 1024 && this.deadlinesHead * 2 > this.deadlines.length) {
      this.deadlines = this.deadlines.slice(this.deadlinesHead);
      this.deadlinesHead = 0;
    }
    this.armDeadlineTimer(this.deadlines[this.deadlinesHead]!.deadline);
  }

  private expire(p: Pending): void {
    if (this.pending.get(p.id) !== p) return;
    this.pending.delete(p.id);
    this.units -= p.units;
    this.ownTimers.delete(p.id);
    const target = p.target;
    p.target = SETTLED;
    target.reject(new TidingsError(ErrorCodes.TIMEOUT, `director did not answer ${p.method} within ${p.timeoutMs} ms`));
  }

  /**
   * Add a request to this turn's batch; a full batch leaves at once. A batch
   * stays under the link's limit; a request too big to share one goes alone
   * (in the plain form, whose frames the limit allows).
   */
  private enqueue(entry: CommandEntry): void {
    const bytes = 9 + entry.method.length + entry.body.length;
    if (this.outgoing.length > 0 && (this.outgoingBytes + bytes > Math.min(MAX_BATCH_BYTES, this.opts.link.maxMessageSize - 1024) || this.outgoing.length >= MAX_BATCH_ENTRIES)) this.flush();
    this.outgoing.push(entry);
    this.outgoingBytes += bytes;
    this.endOfTurn.request();
  }

  private flush(): void {
    this.closePublishBatch();
    const entries = this.outgoing;
    if (entries.length === 0) return;
    this.outgoing = [];
    this.outgoingBytes = 0;
    let frames: Buffer[];
    if (entries.length === 1) {
      const e = entries[0]!;
      const idBuf = Buffer.allocUnsafe(4);
      idBuf.writeUInt32BE(e.id);
      frames = [idBuf, Buffer.from(e.method), e.body];
    } else frames = encodeCommandBatch(entries);
    if (this.queue?.push(frames)) return;
    for (const e of entries) this.settle(e.id, false, null, [], new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'command queue full'));
  }

  private async receive(socket: Dealer): Promise<void> {
    const stopping = (): boolean => this.socket !== socket;
    if (this.opts.loops) return this.opts.loops.run('command-replies', socket, (frames) => this.onReply(frames as Buffer[]), stopping);
    try {
      for await (const frames of socket) this.onReply(frames as Buffer[]);
    } catch (err) {
      if (!stopping()) this.opts.log.error({ err }, 'command socket receive failed');
    }
  }

  private onReply(frames: Buffer[]): void {
    if (frames.length < 3) return;
    const [idBuf, status, body] = frames as [Buffer, Buffer, Buffer];
    if (idBuf.length !== 4) return;
    if (isLinkLost(idBuf)) {
      // A forwarder's link to the director dropped: nothing sent before this reply will be answered.
      this.lostInFlight(this.errorOf(body));
      return;
    }
    if (isBatchFrames(idBuf, status)) {
      const replies = decodeReplyBatch(body);
      if (!replies) throw new Error('malformed reply batch from the director');
      for (const r of replies) this.settle(r.id, r.ok, r.body, []);
      return;
    }
    this.settle(idBuf.readUInt32BE(0), status.toString() === 'ok', body, frames.slice(3));
  }

  /** Resolve or reject request `id` with a reply body (JSON) and its frames, or with `failure`. */
  private settle(id: number, ok: boolean, body: Buffer | null, frames: Buffer[], failure?: TidingsError): void {
    const p = this.pending.get(id);
    if (!p) return; // answered after its timeout
    this.pending.delete(id);
    this.units -= p.units;
    const target = p.target;
    p.target = SETTLED;
    // A request with the client's timeout leaves its place in `deadlines` to be skipped there.
    if (p.timeoutMs !== this.opts.timeoutMs) {
      clearTimeout(this.ownTimers.get(id));
      this.ownTimers.delete(id);
    }
    if (failure) return target.reject(failure);
    if (ok && p.mode === 'raw') {
      this.setDoubt(false, '');
      return target.resolve(new RawJson(body!));
    }
    if (ok && p.mode === 'publishes') {
      this.setDoubt(false, '');
      return this.settlePublishes((target as PublishTargets).list, body!);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body!.toString('utf8'));
    } catch {
      target.reject(new TidingsError(ErrorCodes.INTERNAL, 'unparsable reply from director'));
      return;
    }
    if (ok) {
      this.setDoubt(false, '');
      return target.resolve(p.mode === 'framed' ? { result: parsed, frames } : parsed);
    }
    const err = this.errorOf(parsed);
    const spec = err.spec;
    if (p.mode === 'publishes' && spec === ErrorCodes.METHOD_NOT_FOUND) {
      // A director from before publish_batch: this batch and every later one go one publish at a time.
      if (!this.publishBatchRefused) this.opts.log.warn('the director does not know publish_batch (an older version): publishes go as publish_text, one each');
      this.publishBatchRefused = true;
      return this.publishOneByOne(target as PublishTargets);
    }
    // A forwarder answers 113 for a director it cannot reach; any other answer comes from the director.
    this.setDoubt(spec === ErrorCodes.UNAVAILABLE, err.message);
    target.reject(err);
  }

  /** Each publish of a batch gets its outcome: its {offset, epoch} as the director's JSON text, or its refusal. */
  private settlePublishes(targets: ReplyTarget[], body: Buffer): void {
    const whole = eachPublishOutcome(body, targets.length, (i, ok, start, end) => {
      const t = targets[i]!;
      if (!ok) t.reject(this.errorOf(body.subarray(start, end)));
      else if (t.resolveJson) t.resolveJson(body, start, end);
      else t.resolve(new RawJson(body.subarray(start, end)));
    });
    if (whole) return;
    const err = new TidingsError(ErrorCodes.INTERNAL, 'malformed publish_batch reply from the director');
    for (const t of targets) t.reject(err);
  }

  /** A TidingsError from an error reply's body (JSON text or parsed). */
  private errorOf(body: unknown): TidingsError {
    let e: { code?: unknown; message?: unknown } = {};
    try {
      e = (Buffer.isBuffer(body) ? JSON.parse(body.toString('utf8')) : body) ?? {};
    } catch {
      // an unparsable error body: internal, below
    }
    const spec = (typeof e.code === 'number' && errorByCode(e.code)) || ErrorCodes.INTERNAL;
    const err = new TidingsError(spec);
    if (typeof e.message === 'string') err.message = e.message;
    return err;
  }

  /**
   * Every request waiting for a reply fails with 113: the link that carried it
   * is gone, so its answer can never come (the request may have been carried
   * out, as after a timeout). Requests sent later are not affected.
   */
  private lostInFlight(reason: TidingsError): void {
    if (this.pending.size === 0) return;
    for (const p of [...this.pending.values()]) {
      const err = new TidingsError(reason.spec);
      err.message = reason.message;
      this.settle(p.id, false, null, [], err);
    }
    this.setDoubt(true, reason.message);
  }

  async stop(): Promise<void> {
    const socket = this.socket;
    this.socket = null;
    this.queue?.close();
    this.queue = null;
    this.outgoing = [];
    this.outgoingBytes = 0;
    for (const w of this.peerWaiters.splice(0)) w();
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    this.deadlines = [];
    this.deadlinesHead = 0;
    for (const t of this.ownTimers.values()) clearTimeout(t);
    this.ownTimers.clear();
    const stopped = [...this.pending.values()];
    this.pending.clear();
    this.units = 0;
    const unsent = this.publishTargets;
    this.publishTargets = [];
    this.publishEntries.take();
    for (const p of stopped) p.target.reject(new TidingsError(ErrorCodes.UNAVAILABLE, 'command client stopped'));
    for (const t of unsent) t.reject(new TidingsError(ErrorCodes.UNAVAILABLE, 'command client stopped'));
    if (socket) socket.close();
    await this.receiving?.catch(() => undefined);
  }
}
