/**
 * The edge's index of who listens to what, and its one SUB socket.
 *
 * A channel (or user) topic is subscribed on the SUB socket when its first
 * local listener arrives and unsubscribed after the last leaves. Before the
 * first listener is told it is subscribed, the hub asks the director for a
 * probe on that topic and waits for it to come back down the SUB socket: then
 * the subscription is known to be live end to end, and the probe's offset is
 * where this edge's stream of the channel starts. Later messages must follow
 * offset by offset; a hole or an epoch change is a gap, and the channel's
 * listeners are told (close 4006) so they recover from history.
 */
import { randomBytes } from 'node:crypto';
import { Subscriber } from 'zeromq';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { TopicKind, channelTopic, userBucket, userBucketTopic, parseTopic, edgeTopic, ALL_TOPIC } from '../cluster/topics.js';
import { DownKind, decodeHeader } from '../cluster/wire.js';
import { TICK_OP, tickOf, type MissedPosition, type Tick } from '../cluster/ticks.js';
import { BatchRanges, MAX_BATCH_ENTRIES, downPipeSlots, eachRangeInMessageBatch, walkMessageBatch } from '../cluster/batch.js';
import type { CommandClient } from '../zmq/command-client.js';
import type { LoopGuard } from '../runtime/loop-guard.js';
import { connectSecured, type ClientLink } from '../zmq/security.js';
import { PushRun, SharedPush } from './frames.js';

/** How a channel's stream broke: a hole in its offsets, or a new epoch (the director restarted). */
export type GapKind = 'hole' | 'epoch';

export interface Listener {
  deliver(push: SharedPush): void;
  /**
   * Consecutive messages of one channel at once (a batch from the director);
   * a listener without it gets them one by one through deliver().
   */
  deliverRun?(run: PushRun): void;
  /** The channel's stream broke at this edge; the listener must recover. */
  onGap(channel: string, kind: GapKind): void;
}

/** Where a channel message stands against what this edge has of its stream (streamStep). */
const SEEN = 0;
const NEXT = 1;
const BROKEN = 2;

/**
 * The next offset of the channel's epoch is delivered; one already seen is
 * skipped; anything else (a hole, another epoch) breaks the stream. One rule
 * for messages alone and in batches.
 */
function streamStep(entry: Entry, offset: number, epoch: string): typeof SEEN | typeof NEXT | typeof BROKEN {
  if (epoch === entry.epoch && offset <= entry.offset) return SEEN;
  return epoch === entry.epoch && offset === entry.offset + 1 ? NEXT : BROKEN;
}

interface Entry {
  /** A channel, or a bucket of users (topics.ts: one subscription for all users of a bucket). */
  kind: 'channel' | 'user';
  /** The channel, or the bucket. */
  name: string;
  /** What the probe names: the channel, or the user whose join made the bucket's entry. */
  probeName: string;
  /** The channel's listeners, or those of every user of the bucket. */
  listeners: Set<Listener>;
  live: boolean;
  offset: number;
  epoch: string;
  tokens: Set<string>;
  ready: Promise<void>;
  resolveReady: () => void;
  /** Resolves when a probe comes back. */
  liveSignal: Promise<void>;
  markLive: () => void;
  failed: TidingsError | null;
  /** Set while a re-probe waits for its probe to come back. */
  reprobed?: () => void;
}

export interface Position {
  offset: number;
  epoch: string;
}

export interface HubOptions {
  subscriberAddress: string;
  /** Keys and message size limit of the SUB socket. */
  link: ClientLink;
  edgeId: string;
  highWaterMark: number;
  probeTimeoutMs: number;
  commands: CommandClient;
  log: Logger;
  registry: Registry;
  onControl: (body: Record<string, unknown>) => void;
  /** Counts and logs what one message or one listener breaks, so the receive loop goes on. */
  loops: LoopGuard;
  /** Called with the number of channel messages received (the flush scheduler's measure of load), before they are delivered. */
  onChannelMessage?: (count: number) => void;
  /** Called once the channel messages announced by onChannelMessage are delivered (or found not deliverable). */
  onChannelDelivered?: () => void;
}

/**
 * The entry's topic, made when (un)subscribing rather than kept: a small
 * Buffer comes from Node's 8 KB pool, and one kept per entry can hold a whole
 * pool slab alive (a heap snapshot showed ~750 B per idle connection).
 */
function topicOf(entry: Entry): Buffer {
  return entry.kind === 'channel' ? channelTopic(entry.name) : userBucketTopic(entry.name);
}

export class Hub {
  private sub: Subscriber | null = null;
  private readonly channels = new Map<string, Entry>();
  /** User buckets by bucket. */
  private readonly users = new Map<string, Entry>();
  /** Each user's listeners here: one, or a set when the user has several connections. */
  private readonly userListeners = new Map<string, Listener | Set<Listener>>();
  private readonly probes = new Map<string, Entry>();
  /** Where the entries of the batch being dispatched are (walkMessageBatch). */
  private readonly ranges = new BatchRanges(MAX_BATCH_ENTRIES);
  /** The director's last tick seen. */
  private lastTick: { run: string; seq: number } | null = null;
  /** Probes checking a live channel's position (verifyPositions), by token. */
  private readonly checks = new Map<string, Entry>();
  private loop: Promise<void> | null = null;
  private stopping = false;
  connected = false;
  private readonly received: Counter<'kind'>;
  private readonly gaps: Counter;
  /** Channel messages received since the last scrape: a plain count on the hot path, added to `received` when collected. */
  private receivedMessages = 0;
  /** Pushes handed to local listeners (one per listener), by kind, since start: plain counts, read by metrics and the admin report. */
  readonly delivered = { message: 0, direct: 0, event: 0 };

  constructor(private readonly opts: HubOptions) {
    this.received = new Counter({
      name: 'tidings_edge_received_total',
      help: 'Messages the edge received from its SUB socket, by kind',
      labelNames: ['kind'],
      registers: [opts.registry],
      collect: () => {
        if (this.receivedMessages === 0) return;
        this.received.inc({ kind: 'message' }, this.receivedMessages);
        this.receivedMessages = 0;
      },
    });
    this.gaps = new Counter({ name: 'tidings_edge_gaps_total', help: 'Offset gaps detected on channels', registers: [opts.registry] });
    const delivered = this.delivered;
    const collected = { message: 0, direct: 0, event: 0 };
    new Counter({
      name: 'tidings_edge_delivered_messages_total',
      help: 'Live pushes delivered to client connections (one per subscriber), by kind: message (channel), direct (to a user), event (presence, state)',
      labelNames: ['kind'],
      registers: [opts.registry],
      collect() {
        for (const kind of ['message', 'direct', 'event'] as const) {
          this.inc({ kind }, delivered[kind] - collected[kind]);
          collected[kind] = delivered[kind];
        }
      },
    });
  }

  start(): void {
    // Down batches reach DOWN_BATCH_BYTES: the pipe holds as many bytes as `highWaterMark` 2 KB batches.
    const sub = new Subscriber({ receiveHighWaterMark: downPipeSlots(this.opts.highWaterMark), linger: 0 });
    sub.events.on('connect', () => (this.connected = true));
    sub.events.on('disconnect', () => (this.connected = false));
    connectSecured(sub, this.opts.subscriberAddress, this.opts.link);
    sub.subscribe(edgeTopic(this.opts.edgeId), ALL_TOPIC);
    this.sub = sub;
    this.loop = this.receive(sub);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.sub?.close();
    await this.loop?.catch(() => undefined);
    this.sub = null;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  /** Channel subscriptions of local listeners (one per listener and channel). */
  subscriptionCount(): number {
    let n = 0;
    for (const e of this.channels.values()) n += e.listeners.size;
    return n;
  }

  listenersOf(channel: string): number {
    return this.channels.get(channel)?.listeners.size ?? 0;
  }

  channelNames(): IterableIterator<string> {
    return this.channels.keys();
  }

  /** Add a listener to a channel; resolves with the position its live stream starts after. */
  async joinChannel(listener: Listener, channel: string): Promise<Position> {
    const entry = this.entryFor('channel', channel);
    entry.listeners.add(listener);
    await this.whenLive(entry, listener);
    return { offset: entry.offset, epoch: entry.epoch };
  }

  leaveChannel(listener: Listener, channel: string): void {
    this.leave(this.channels, channel, listener);
  }

  /** Add a listener to a user's direct messages; resolves once the user's bucket is subscribed end to end. */
  async joinUser(listener: Listener, user: string): Promise<void> {
    const entry = this.entryFor('user', userBucket(user), user);
    entry.listeners.add(listener);
    this.addUserListener(user, listener);
    try {
      await this.whenLive(entry, listener);
    } catch (err) {
      this.removeUserListener(user, listener);
      throw err;
    }
  }

  leaveUser(listener: Listener, user: string): void {
    this.removeUserListener(user, listener);
    this.leave(this.users, userBucket(user), listener);
  }

  private addUserListener(user: string, listener: Listener): void {
    const held = this.userListeners.get(user);
    if (held === undefined) this.userListeners.set(user, listener);
    else if (held instanceof Set) held.add(listener);
    else if (held !== listener) this.userListeners.set(user, new Set([held, listener]));
  }

  private removeUserListener(user: string, listener: Listener): void {
    const held = this.userListeners.get(user);
    if (held === listener) this.userListeners.delete(user);
    else if (held instanceof Set) {
      held.delete(listener);
      if (held.size === 1) this.userListeners.set(user, held.values().next().value!);
    }
  }

  private async whenLive(entry: Entry, listener: Listener): Promise<void> {
    await entry.ready;
    if (entry.failed) {
      entry.listeners.delete(listener);
      this.dropIfEmpty(entry);
      throw entry.failed;
    }
  }

  private entryFor(kind: 'channel' | 'user', name: string, probeName = name): Entry {
    const map = kind === 'channel' ? this.channels : this.users;
    let entry = map.get(name);
    if (entry) return entry;
    let resolveReady!: () => void;
    const ready = new Promise<void>((r) => (resolveReady = r));
    let markLive!: () => void;
    const liveSignal = new Promise<void>((r) => (markLive = r));
    entry = {
      kind,
      name,
      probeName,
      listeners: new Set(),
      live: false,
      offset: 0,
      epoch: '',
      tokens: new Set(),
      ready,
      resolveReady,
      liveSignal,
      markLive,
      failed: null,
    };
    map.set(name, entry);
    this.topic('subscribe', topicOf(entry));
    void this.establish(entry);
    return entry;
  }

  private leave(map: Map<string, Entry>, name: string, listener: Listener): void {
    const entry = map.get(name);
    if (!entry) return;
    entry.listeners.delete(listener);
    if (entry.live) this.dropIfEmpty(entry);
  }

  private dropIfEmpty(entry: Entry): void {
    if (entry.listeners.size > 0) return;
    const map = entry.kind === 'channel' ? this.channels : this.users;
    if (map.get(entry.name) !== entry) return;
    map.delete(entry.name);
    for (const t of entry.tokens) this.probes.delete(t);
    if (!this.stopping) this.topic('unsubscribe', topicOf(entry));
  }

  /** Probe until the subscription is live, with growing waits, within probeTimeoutMs. */
  private async establish(entry: Entry): Promise<void> {
    const deadline = Date.now() + this.opts.probeTimeoutMs;
    let wait = 20;
    try {
      while (!entry.live && !this.stopping) {
        const token = randomBytes(9).toString('base64url');
        entry.tokens.add(token);
        this.probes.set(token, entry);
        const remaining = deadline - Date.now();
        if (remaining <= 0) throw new TidingsError(ErrorCodes.UNAVAILABLE, `subscription to ${entry.kind} ${entry.name} not confirmed in time`);
        await this.opts.commands.request('probe', { kind: entry.kind, name: entry.probeName, token }, remaining);
        const ms = Math.max(0, Math.min(deadline - Date.now(), wait));
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([entry.liveSignal, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
        clearTimeout(timer);
        wait = Math.min(wait * 2, 500);
      }
      if (!entry.live) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'edge stopping');
    } catch (err) {
      entry.failed = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.UNAVAILABLE, (err as Error).message);
      // While the director is unreachable the edge says so once (EdgeServer); each refused subscription is a detail.
      const level = entry.failed.spec === ErrorCodes.UNAVAILABLE ? 'debug' : 'warn';
      this.opts.log[level]({ kind: entry.kind, name: entry.name, err: entry.failed.message }, 'subscription not established');
    } finally {
      for (const t of entry.tokens) this.probes.delete(t);
      entry.tokens.clear();
      entry.resolveReady();
      if (entry.failed) {
        const map = entry.kind === 'channel' ? this.channels : this.users;
        if (map.get(entry.name) === entry) {
          map.delete(entry.name);
          if (!this.stopping) this.topic('unsubscribe', topicOf(entry));
        }
      } else {
        this.dropIfEmpty(entry);
      }
    }
  }

  /**
   * Check where every live channel's stream stands: the director sends each
   * probe down behind every message it sequenced before, so a probe whose
   * offset is past this edge's shows messages that never arrived (at the end
   * of a stream, where no later message shows the hole).
   */
  verifyPositions(): void {
    for (const entry of this.channels.values()) {
      if (!entry.live) continue;
      const token = randomBytes(9).toString('base64url');
      this.checks.set(token, entry);
      const forget = (): void => {
        // Kept until the probe could have come back; one that never does leaves nothing behind.
        setTimeout(() => this.checks.delete(token), this.opts.probeTimeoutMs).unref();
      };
      this.opts.commands.request('probe', { kind: 'channel', name: entry.name, token }).then(forget, forget);
    }
  }

  /**
   * A tick that skips a number: a hop sent on without this edge for a while.
   * A tick that names a missed position: a hop sent that message or probe on
   * without its full peers just before, and this edge may have been one.
   */
  private onTick(tick: Tick): void {
    const last = this.lastTick;
    this.lastTick = { run: tick.run, seq: tick.seq };
    if (tick.missed) this.checkMissed(tick.missed);
    if (last && last.run === tick.run && tick.seq > last.seq + 1) {
      this.opts.log.warn({ missed: tick.seq - last.seq - 1 }, 'director ticks missed: checking where every channel stands');
      this.verifyPositions();
    }
  }

  /** Everything before the tick has reached this edge: a position past its own is a message it never got. */
  private checkMissed(m: MissedPosition): void {
    const entry = this.channels.get(m.channel);
    if (!entry || !entry.live) return;
    if (m.epoch !== entry.epoch || m.offset > entry.offset) this.streamBroke(entry, m.offset, m.epoch);
  }

  /**
   * The channel's stream at this edge broke: the listeners are told (they
   * close their clients, who recover) and the stream goes on from here.
   */
  private streamBroke(entry: Entry, offset: number, epoch: string): void {
    const kind: GapKind = epoch !== entry.epoch ? 'epoch' : 'hole';
    if (kind === 'hole') this.gaps.inc();
    this.opts.log.warn({ channel: entry.name, expected: entry.offset + 1, got: offset, epoch, was: entry.epoch }, kind === 'epoch' ? 'channel epoch changed' : 'gap in channel stream');
    entry.offset = offset;
    entry.epoch = epoch;
    for (const l of [...entry.listeners]) {
      try {
        l.onGap(entry.name, kind);
      } catch (err) {
        this.opts.loops.failed('edge-delivery', err, { channel: entry.name });
      }
    }
  }

  /**
   * Check every live channel against the director (after it restarted): a
   * probe goes down each channel's topic, and one that shows messages this
   * edge never received (sequenced by the new director before this edge's
   * subscription reached it) breaks the stream as a message would, so the
   * subscribers learn it even if no further message comes. A channel whose
   * probe does not come back within probeTimeoutMs (the restarted director
   * does not have this edge's subscription) is broken as an epoch change too:
   * its subscribers resubscribe, and that re-establishes it.
   */
  async reprobe(): Promise<void> {
    const live = [...this.channels.values()].filter((e) => e.live);
    await Promise.all(live.map((e) => this.reprobeOne(e)));
  }

  private async reprobeOne(entry: Entry): Promise<void> {
    const deadline = Date.now() + this.opts.probeTimeoutMs;
    let back = false;
    const seen = new Promise<void>((r) => (entry.reprobed = () => ((back = true), r())));
    let wait = 50;
    try {
      while (!back && !this.stopping && this.channels.get(entry.name) === entry && Date.now() < deadline) {
        const token = randomBytes(9).toString('base64url');
        entry.tokens.add(token);
        this.probes.set(token, entry);
        try {
          await this.opts.commands.request('probe', { kind: 'channel', name: entry.name, token }, Math.max(1, deadline - Date.now()));
        } catch {
          // The director is not answering yet: try again until the deadline.
        }
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([seen, new Promise<void>((r) => (timer = setTimeout(r, Math.min(wait, Math.max(0, deadline - Date.now())))))]);
        clearTimeout(timer);
        wait = Math.min(wait * 2, 500);
      }
    } finally {
      entry.reprobed = undefined;
      for (const t of entry.tokens) this.probes.delete(t);
      entry.tokens.clear();
    }
    if (!back && !this.stopping && this.channels.get(entry.name) === entry) this.streamBroke(entry, 0, '');
  }

  /** (Un)subscribe a topic; a socket closed under a dead loop is left alone (the process is ending). */
  private topic(op: 'subscribe' | 'unsubscribe', topic: Buffer): void {
    const sub = this.sub;
    if (!sub || sub.closed) return;
    sub[op](topic);
  }

  /** The one SUB loop of this edge: a message that fails is counted and skipped, never the end of the loop. */
  private receive(sub: Subscriber): Promise<void> {
    return this.opts.loops.run(
      'edge-sub',
      sub,
      (frames) => {
        if (frames.length === 3) this.dispatch(frames[0]!, frames[1]!, frames[2]!);
      },
      () => this.stopping,
    );
  }

  /** Hand a push to each listener; one listener's failure is its own, the others still get it. */
  private deliverAll(listeners: Iterable<Listener>, push: SharedPush): void {
    for (const l of listeners) {
      try {
        l.deliver(push);
      } catch (err) {
        this.opts.loops.failed('edge-delivery', err, { channel: push.channel });
      }
    }
  }

  /** One message of a live channel: the next offset is delivered, an old one skipped, any other breaks the stream. */
  private channelMessage(entry: Entry, offset: number, epoch: string, body: Buffer): void {
    const step = streamStep(entry, offset, epoch);
    if (step === SEEN) return;
    if (step === BROKEN) {
      this.streamBroke(entry, offset, epoch);
      return;
    }
    entry.offset = offset;
    this.delivered.message += entry.listeners.size;
    this.deliverAll(entry.listeners, new SharedPush(body, entry.name, offset));
  }

  /**
   * A batch of a live channel's messages: each checked as channelMessage
   * checks one, and the deliverable ones handed to the listeners as runs (one
   * per stretch between breaks, in order with the breaks).
   */
  private channelBatch(entry: Entry, epoch: string, body: Buffer, count: number): void {
    const r = this.ranges;
    if (r.filled === count && r.consecutive && epoch === entry.epoch && r.offsets[0] === entry.offset + 1) {
      // The director's usual batch: every entry is the next one, as the walk below would find one by one.
      entry.offset = r.offsets[count - 1]!;
      this.deliverRun(entry, PushRun.of(body, entry.name, r, 0, count));
      return;
    }
    let run: PushRun | null = null;
    eachRangeInMessageBatch(body, (offset, start, end) => {
      const step = streamStep(entry, offset, epoch);
      if (step === SEEN) return;
      if (step === BROKEN) {
        if (run) this.deliverRun(entry, run);
        run = null;
        this.streamBroke(entry, offset, epoch);
        return;
      }
      entry.offset = offset;
      (run ??= new PushRun(body, entry.name)).add(offset, start, end);
    });
    if (run) this.deliverRun(entry, run);
  }

  /** Hand a run to each listener; one listener's failure is its own (per push for those taking them one by one). */
  private deliverRun(entry: Entry, run: PushRun): void {
    this.delivered.message += entry.listeners.size * run.count;
    for (const l of entry.listeners) {
      if (l.deliverRun) {
        try {
          l.deliverRun(run);
        } catch (err) {
          this.opts.loops.failed('edge-delivery', err, { channel: entry.name });
        }
        continue;
      }
      for (let i = 0; i < run.count; i++) {
        try {
          l.deliver(run.push(i));
        } catch (err) {
          this.opts.loops.failed('edge-delivery', err, { channel: entry.name });
        }
      }
    }
  }

  private dispatch(topicBuf: Buffer, headerBuf: Buffer, body: Buffer): void {
    const header = decodeHeader(headerBuf);
    if (!header) return;
    switch (header.kind) {
      case DownKind.Message: {
        this.receivedMessages++;
        this.opts.onChannelMessage?.(1);
        try {
          const t = parseTopic(topicBuf);
          if (!t || t.kind !== TopicKind.Channel) return;
          const entry = this.channels.get(t.name);
          if (!entry || !entry.live) return; // before the probe: part of history, not of this edge's stream
          this.channelMessage(entry, header.offset, header.epoch, body);
        } finally {
          this.opts.onChannelDelivered?.();
        }
        return;
      }
      case DownKind.MessageBatch: {
        // Several consecutive messages of one channel: each checked and delivered as if it had come alone.
        const count = walkMessageBatch(body, this.ranges);
        const t = parseTopic(topicBuf);
        if (count === 0 || !t || t.kind !== TopicKind.Channel) return;
        this.receivedMessages += count;
        this.opts.onChannelMessage?.(count);
        try {
          const entry = this.channels.get(t.name);
          if (!entry || !entry.live) return;
          this.channelBatch(entry, header.epoch, body, count);
        } finally {
          this.opts.onChannelDelivered?.();
        }
        return;
      }
      case DownKind.ChannelEvent: {
        // Presence and state events carry no offset: no gap check, no recovery.
        this.received.inc({ kind: 'event' });
        const t = parseTopic(topicBuf);
        if (!t || t.kind !== TopicKind.Channel) return;
        const entry = this.channels.get(t.name);
        if (!entry || !entry.live) return;
        const push = new SharedPush(body, t.name, 0);
        if (header.epoch !== '') push.exceptUser = header.epoch;
        this.delivered.event += entry.listeners.size;
        this.deliverAll(entry.listeners, push);
        return;
      }
      case DownKind.Direct: {
        this.received.inc({ kind: 'direct' });
        const t = parseTopic(topicBuf);
        if (!t || t.kind !== TopicKind.User) return;
        // Other users of a bucket this edge holds have no listeners here.
        const held = this.userListeners.get(t.name);
        if (held === undefined || !this.users.get(userBucket(t.name))?.live) return;
        this.delivered.direct += held instanceof Set ? held.size : 1;
        this.deliverAll(held instanceof Set ? held : [held], new SharedPush(body));
        return;
      }
      case DownKind.Probe: {
        let token: unknown;
        try {
          token = (JSON.parse(body.toString('utf8')) as { token?: unknown }).token;
        } catch {
          return;
        }
        if (typeof token !== 'string') return;
        const checked = this.checks.get(token);
        if (checked) {
          this.checks.delete(token);
          const missed = checked.epoch !== header.epoch || header.offset > checked.offset;
          if (missed && checked.live && this.channels.get(checked.name) === checked) this.streamBroke(checked, header.offset, header.epoch);
          return;
        }
        const entry = this.probes.get(token);
        if (!entry) return;
        if (entry.live) {
          // A re-probe (the director restarted): messages this edge never received break the
          // stream now. With none yet (a new epoch at offset 0), the first one will.
          this.probes.delete(token);
          entry.tokens.delete(token);
          entry.reprobed?.();
          const missed = header.epoch !== entry.epoch ? header.offset > 0 : header.offset > entry.offset;
          if (missed) this.streamBroke(entry, header.offset, header.epoch);
          return;
        }
        entry.live = true;
        entry.offset = header.offset;
        entry.epoch = header.epoch;
        entry.markLive();
        return;
      }
      case DownKind.Control: {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body.toString('utf8'));
        } catch {
          return;
        }
        if (!parsed || typeof parsed !== 'object') return;
        const control = parsed as Record<string, unknown>;
        if (control['op'] === TICK_OP) {
          const tick = tickOf(control);
          if (tick) this.onTick(tick);
        } else this.opts.onControl(control);
        return;
      }
    }
  }
}
