/**
 * The director: sequences every channel message (offset, epoch), keeps the
 * channel state and answers commands. Publishes arrive on the publisher
 * address (XSUB), stamped pushes leave on the subscriber address (XPUB), which
 * only forwards a topic to nodes that subscribed to it.
 */
import { XPublisher, XSubscriber, Router } from 'zeromq';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { carriedChannelProblem, carriedUserProblem, channelProblem, isValidUser } from '../protocol/names.js';
import { SendQueue } from '../zmq/send-queue.js';
import { bindSecured, linkLimit, type BoundLink } from '../zmq/security.js';
import { channelTopic, userTopic } from '../cluster/topics.js';
import { DownKind, encodeHeader, parsePublish, WireError } from '../cluster/wire.js';
import { ChannelRegistry } from './channels.js';
import { encodeDirectPush, encodeMessagePush } from './push-encoding.js';
import { CommandHandlers } from './commands.js';

export interface PublishOutcome {
  offset: number;
  epoch: string;
}

const COLLECT_INTERVAL_MS = 10_000;

export class Director {
  private xsub: XSubscriber | null = null;
  private xpub: XPublisher | null = null;
  private router: Router | null = null;
  private down: SendQueue | null = null;
  private replies: SendQueue | null = null;
  readonly channels: ChannelRegistry;
  /** Topics some node holds a subscription to, as XPUB reports them. */
  readonly heldTopics = new Set<string>();
  private loops: Promise<void>[] = [];
  private links: BoundLink[] = [];
  private collectTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** The command table; features add their commands with `handlers.register`. */
  readonly handlers: CommandHandlers;
  /** Extra reasons to keep a channel's state (e.g. presence members); checked by collection. */
  readonly channelHolds: Array<(channel: string) => boolean> = [];
  /** Run after each channel collection, to collect state kept beside the channels. */
  readonly collectors: Array<(now: number) => void> = [];
  /**
   * Told of every push sent down a channel (message or event) or to a user,
   * after it was queued for sending (channelstream catch-up keeps what a
   * connection away from its node would have received).
   */
  readonly pushObservers: Array<(kind: 'channel' | 'user', name: string, push: Buffer, exceptUser: string | null) => void> = [];
  private readonly published: Counter<'target'>;
  /** Channel messages sent since the last scrape, added to `published` when collected (keeps label hashing off the hot path). */
  private publishedChannel = 0;
  private readonly rejected: Counter<'code'>;

  /** Channels idle this long with no listener and no history are collected (channel_idle_timeout). */
  private readonly collectIdleMs: number;
  /** Largest frame the director sends: what every node's connecting socket accepts. */
  private readonly frameLimit: number;

  constructor(
    readonly config: Config,
    readonly log: Logger,
    registry: Registry,
  ) {
    this.collectIdleMs = config.channel_idle_timeout * 1000;
    this.frameLimit = linkLimit(config);
    this.channels = new ChannelRegistry({
      historySize: config.history_size,
      historyTtlMs: config.history_ttl * 1000,
    });
    this.handlers = new CommandHandlers(this, log);
    this.published = new Counter({
      name: 'tidings_director_published_total',
      help: 'Messages sequenced and sent down by the director',
      labelNames: ['target'],
      registers: [registry],
      collect: () => {
        if (this.publishedChannel === 0) return;
        this.published.inc({ target: 'channel' }, this.publishedChannel);
        this.publishedChannel = 0;
      },
    });
    this.rejected = new Counter({
      name: 'tidings_director_rejected_total',
      help: 'Publishes the director rejected, by error code',
      labelNames: ['code'],
      registers: [registry],
    });
    const channels = this.channels;
    new Gauge({
      name: 'tidings_director_channels',
      help: 'Channels with state on the director',
      registers: [registry],
      collect() {
        this.set(channels.size);
      },
    });
  }

  async start(): Promise<void> {
    const hwm = this.config.zmq_high_water_mark;
    // noDrop: at the high-water mark sends wait instead of silently dropping.
    this.xpub = new XPublisher({ sendHighWaterMark: hwm, receiveHighWaterMark: hwm, noDrop: true, linger: 0 });
    this.xsub = new XSubscriber({ receiveHighWaterMark: hwm, sendHighWaterMark: hwm, linger: 0 });
    this.router = new Router({ sendHighWaterMark: hwm, receiveHighWaterMark: hwm, linger: 0 });
    this.links.push(await bindSecured(this.xpub, this.config.subscriber_address, 'subscriber', this.config, this.log));
    this.links.push(await bindSecured(this.xsub, this.config.publisher_address, 'publisher', this.config, this.log));
    this.links.push(await bindSecured(this.router, this.config.command_address, 'command', this.config, this.log));
    // XSUB: subscribe to everything published to us.
    await this.xsub.send(Buffer.from([1]));
    this.down = new SendQueue(this.xpub, hwm, this.log, 'director-down');
    this.replies = new SendQueue(this.router, hwm, this.log, 'director-replies');
    this.loops.push(this.publishLoop(this.xsub), this.subscriptionLoop(this.xpub), this.commandLoop(this.router));
    this.collectTimer = setInterval(() => this.collect(), Math.min(COLLECT_INTERVAL_MS, Math.max(250, this.collectIdleMs / 4)));
    this.collectTimer.unref();
    this.log.info(
      {
        subscriber: this.config.subscriber_address,
        publisher: this.config.publisher_address,
        command: this.config.command_address,
        curve: this.config.curve !== null,
      },
      'director listening',
    );
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.collectTimer) clearInterval(this.collectTimer);
    await this.down?.drain(1000);
    await this.replies?.drain(500);
    this.down?.close();
    this.replies?.close();
    for (const s of [this.xsub, this.xpub, this.router]) s?.close();
    await Promise.allSettled(this.loops);
    await Promise.allSettled(this.links.splice(0).map((l) => l.release()));
    this.xsub = this.xpub = this.router = null;
    this.log.info('director stopped');
  }

  /** Sequence and send a channel message. `dataJson` must be valid JSON text. */
  publishChannel(channel: string, dataJson: string, sender: string | null, noHistory: boolean): PublishOutcome {
    const problem = carriedChannelProblem(channel);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
    const now = Date.now();
    const state = this.channels.getOrCreate(channel, now);
    const offset = state.next(now);
    const push = encodeMessagePush(channel, offset, state.epoch, sender, now, dataJson);
    if (!noHistory) state.remember({ offset, time: now, push });
    this.sendDown([channelTopic(channel), encodeHeader(DownKind.Message, offset, state.epoch), push]);
    this.publishedChannel++;
    for (const o of this.pushObservers) o('channel', channel, push, null);
    return { offset, epoch: state.epoch };
  }

  publishUser(user: string, dataJson: string, sender: string | null): void {
    const problem = carriedUserProblem(user);
    if (problem) throw new TidingsError(ErrorCodes.INVALID_USER, problem);
    const push = encodeDirectPush(user, sender, Date.now(), dataJson);
    this.sendDown([userTopic(user), encodeHeader(DownKind.Direct, 0, ''), push]);
    for (const o of this.pushObservers) o('user', user, push, null);
    this.published.inc({ target: 'user' });
  }

  /** Send a probe down a topic, so an edge learns its subscription is live and where the stream stands. */
  probe(kind: 'channel' | 'user', name: string, token: string): PublishOutcome {
    const body = Buffer.from(JSON.stringify({ token }));
    if (kind === 'channel') {
      const problem = carriedChannelProblem(name);
      if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
      const state = this.channels.getOrCreate(name, Date.now());
      this.sendDown([channelTopic(name), encodeHeader(DownKind.Probe, state.offset, state.epoch), body]);
      return { offset: state.offset, epoch: state.epoch };
    }
    if (carriedUserProblem(name)) throw new TidingsError(ErrorCodes.INVALID_USER);
    this.sendDown([userTopic(name), encodeHeader(DownKind.Probe, 0, ''), body]);
    return { offset: 0, epoch: '' };
  }

  /** Send an unsequenced event (presence, state) to a channel's listeners, skipping `exceptUser`'s connections. */
  channelEvent(channel: string, exceptUser: string | null, body: Buffer): void {
    this.sendDown([channelTopic(channel), encodeHeader(DownKind.ChannelEvent, 0, exceptUser ?? ''), body]);
    for (const o of this.pushObservers) o('channel', channel, body, exceptUser);
  }

  /** Send a control message to edges on a topic. */
  control(topic: Buffer, body: unknown): void {
    this.sendDown([topic, encodeHeader(DownKind.Control, 0, ''), Buffer.from(JSON.stringify(body))]);
  }

  reply(frames: Buffer[]): void {
    if (!this.replies?.push(frames)) this.log.warn('command reply queue full; reply dropped, the caller will time out');
  }

  get downQueue(): SendQueue | null {
    return this.down;
  }

  private sendDown(frames: Buffer[]): void {
    if (!this.down) throw new TidingsError(ErrorCodes.UNAVAILABLE, 'director stopped');
    // Nodes disconnect a director that sends more than their limit: refuse it here instead.
    if (frames[2]!.length > this.frameLimit) throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${frames[2]!.length} bytes > the node link limit ${this.frameLimit}`);
    if (!this.down.push(frames)) throw new TidingsError(ErrorCodes.LIMIT_EXCEEDED, 'director send queue full');
  }

  private handleInbound(frames: Buffer[]): void {
    try {
      let total = 0;
      for (const f of frames) total += f.length;
      if (total > this.config.max_message_size) {
        throw new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `${total} bytes > max_message_size ${this.config.max_message_size}`);
      }
      const p = parsePublish(frames);
      let parsed: unknown;
      try {
        parsed = JSON.parse(p.data);
      } catch {
        throw new TidingsError(ErrorCodes.INVALID_JSON, `payload for ${p.target} ${JSON.stringify(p.name.slice(0, 64))} is not JSON`);
      }
      let sender = p.sender;
      if (p.omnibus && parsed && typeof parsed === 'object' && typeof (parsed as Record<string, unknown>)['sender'] === 'string') {
        sender = (parsed as Record<string, string>)['sender']!;
      }
      // ZeroMQ publishes are native: they name channels and users by the native rules (docs/protocol.md).
      if (p.target === 'channel') {
        const problem = channelProblem(p.name);
        if (problem) throw new TidingsError(ErrorCodes.INVALID_CHANNEL, problem);
        this.publishChannel(p.name, p.data, sender, p.noHistory);
      } else {
        if (!isValidUser(p.name)) throw new TidingsError(ErrorCodes.INVALID_USER, 'user must be 1-200 characters without control characters');
        this.publishUser(p.name, p.data, sender);
      }
    } catch (err) {
      const code = err instanceof TidingsError ? err.code : err instanceof WireError ? ErrorCodes.BAD_REQUEST.code : ErrorCodes.INTERNAL.code;
      this.rejected.inc({ code: String(code) });
      // A PUB socket has no way back to the worker: the rejection is logged with its code.
      this.log.warn({ code, err: (err as Error).message }, 'rejected a message on the publisher address');
    }
  }

  private async publishLoop(xsub: XSubscriber): Promise<void> {
    try {
      for await (const frames of xsub) {
        this.handleInbound(frames as Buffer[]);
        if (this.down!.full) await this.down!.space();
      }
    } catch (err) {
      if (!this.stopping) this.log.error({ err }, 'publisher loop failed');
    }
  }

  private async subscriptionLoop(xpub: XPublisher): Promise<void> {
    try {
      for await (const [msg] of xpub) {
        if (!msg || msg.length < 1) continue;
        const key = msg.subarray(1).toString('latin1');
        if (msg[0] === 1) this.heldTopics.add(key);
        else if (msg[0] === 0) this.heldTopics.delete(key);
      }
    } catch (err) {
      if (!this.stopping) this.log.error({ err }, 'subscription loop failed');
    }
  }

  private async commandLoop(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        if (frames.length < 4) continue;
        const route = frames.slice(0, frames.length - 3) as Buffer[];
        const [id, method, body] = frames.slice(frames.length - 3) as [Buffer, Buffer, Buffer];
        void this.handlers.dispatch(method.toString('utf8'), body).then(
          (result) => {
            const json = Buffer.from(JSON.stringify(result ?? null));
            if (json.length <= this.frameLimit) return this.reply([...route, id, Buffer.from('ok'), json]);
            // The caller's socket would drop this link for a larger frame: answer with the error instead.
            const e = new TidingsError(ErrorCodes.PAYLOAD_TOO_LARGE, `reply of ${json.length} bytes > the node link limit ${this.frameLimit}; ask for less`);
            this.log.warn({ method: method.toString('utf8').slice(0, 64), bytes: json.length }, 'command reply too large for the link');
            this.reply([...route, id, Buffer.from('error'), Buffer.from(JSON.stringify(e.toBody()))]);
          },
          (err: unknown) => {
            const e = err instanceof TidingsError ? err : new TidingsError(ErrorCodes.INTERNAL);
            if (!(err instanceof TidingsError)) this.log.error({ err }, 'command failed');
            this.reply([...route, id, Buffer.from('error'), Buffer.from(JSON.stringify(e.toBody()))]);
          },
        );
      }
    } catch (err) {
      if (!this.stopping) this.log.error({ err }, 'command loop failed');
    }
  }

  isChannelHeld(name: string): boolean {
    if (this.heldTopics.has(channelTopic(name).toString('latin1'))) return true;
    for (const hold of this.channelHolds) if (hold(name)) return true;
    return false;
  }

  /** Collect idle channels, then the state features keep beside them. */
  collect(): number {
    const now = Date.now();
    const removed = this.channels.collect(now, this.collectIdleMs, (name) => this.isChannelHeld(name));
    for (const c of this.collectors) c(now);
    if (removed > 0) this.log.debug({ removed }, 'collected idle channels');
    return removed;
  }
}

