/**
 * The forwarder: a node's proxy to the director, as in omnibus but with
 * subscriptions flowing upstream.
 *   down:     XSUB connects to the director's subscriber address  <-> XPUB binds the local subscriber address
 *   up:       XSUB binds the local publisher address              <-> XPUB connects to the director's publisher address
 *   commands: ROUTER binds the local command address              <-> DEALER connects to the director's command address
 * Every direction goes through a bounded SendQueue; a full queue stops the
 * loop reading, so ZeroMQ's high-water marks push back on the sender.
 *
 * With several directors (redis engine) the three upstream sockets connect to
 * the active one only, found by a DirectorWatch; when another takes over they
 * disconnect and connect to it. The XSUB re-sends the node's subscriptions to
 * the new director on connect, so the node's channels flow again.
 */
import { XPublisher, XSubscriber, Router, Dealer } from 'zeromq';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/resolve.js';
import { SendQueue, collectGrowth, type Queued, type Sendable, type SendQueueOptions } from '../zmq/send-queue.js';
import { HEARTBEAT } from '../zmq/command-client.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';
import { DirectorWatch } from '../zmq/director-watch.js';
import { LoopGuard } from '../runtime/loop-guard.js';
import { ALL_TOPIC } from '../cluster/topics.js';
import { TickRelay } from './tick-relay.js';
import { GcPacer, exposedGc } from './gc-pacer.js';
import { CommandCallers } from './command-callers.js';
import { LINK_LOST_ID } from '../cluster/link-lost.js';
import { bindSecured, connectSecured, nodeClientLink, type BoundLink, type ClientLink } from '../zmq/security.js';
import { decodeCommandBatch, downPipeSlots, pipeSlots, queueBytes, isBatchFrames, messagesIn, type BatchPath, type CommandEntry } from '../cluster/batch.js';

/** How often a forwarder asks every director which one is active, and how long an answer counts. */
const WATCH_INTERVAL_MS = 200;
const WATCH_STALE_MS = 1000;
const ERROR = Buffer.from('error');

/** How long a command waits for a lost director link to come back before it is answered 113. */
const UNREACHABLE_GRACE_MS = 1000;
const MAX_HELD = 10_000;

interface Receivable {
  receive(): Promise<Buffer[]>;
}

/** Whether a topic frame is ALL_TOPIC (the director's signals to every edge), without a native call per batch. */
const isAllTopic = (t: Buffer | undefined): boolean => t !== undefined && t.length === ALL_TOPIC.length && t[0] === ALL_TOPIC[0] && t[1] === ALL_TOPIC[1];

export class Forwarder {
  private sockets: Array<{ close(): void }> = [];
  private links: BoundLink[] = [];
  private queues: SendQueue[] = [];
  private running: Promise<void>[] = [];
  private stopping = false;
  /**
   * Messages passed on per path, as plain numbers: tidings_forwarder_messages_total reads them when scraped
   * (a prom-client label lookup per batch cost more than the rest of a batch's JavaScript here).
   */
  private readonly passed = new Map<string, number>();
  /**
   * The DEALER's link to the director's command address (socket events, ZMTP heartbeats): unknown until it
   * connects or is refused. Only a link known to be down answers 113 at once; while it is unknown (a slow
   * start) commands wait in the queue as usual.
   */
  private director: 'unknown' | 'up' | 'down' = 'unknown';
  /** Commands that arrived while the link was down, held a moment (a restarting director) before 113. */
  private held: Buffer[][] = [];
  private heldFlush: ((msgs: Buffer[][]) => void) | null = null;
  /** Callers with commands passed to the director over the current link (see linkLost). */
  private readonly callers = new CommandCallers();
  /** Tells those callers that the link dropped: set once the reply path exists. */
  private linkLost: (() => void) | null = null;
  private watch: DirectorWatch | null = null;
  private upstream: { downIn: XSubscriber; upOut: XPublisher; cmdOut: Dealer; link: ClientLink } | null = null;
  /** Index of the director the upstream sockets are connected to, or -1. */
  private following = -1;
  private readonly switches: Counter;
  private readonly loops: LoopGuard;
  /** Young-generation collections paced by the batches received (forwarder_minor_gc_mb); off until start(). */
  private gcPacer = new GcPacer(0, () => undefined);
  /** Set by the node: a forwarding loop died, end the process (its supervisor restarts it). */
  onFatal: (reason: string) => void = () => undefined;

  constructor(
    readonly config: Config,
    readonly log: Logger,
    registry: Registry,
  ) {
    const passed = this.passed;
    const reported = new Map<string, number>();
    new Counter({
      name: 'tidings_forwarder_messages_total',
      help: 'Messages the forwarder passed on (a batch counts the messages it carries), by path (down: director to node, down-broadcast: the director\'s ticks to every edge, up: node to director, sub: subscriptions upstream, cmd/reply: commands)',
      labelNames: ['path'],
      registers: [registry],
      collect() {
        for (const [path, n] of passed) {
          const seen = reported.get(path) ?? 0;
          if (n > seen) this.inc({ path }, n - seen);
          reported.set(path, n);
        }
      },
    });
    this.switches = new Counter({ name: 'tidings_forwarder_director_switches_total', help: 'Times the forwarder connected to a (new) active director', registers: [registry] });
    this.loops = new LoopGuard(registry, log, (loop, err) => this.onFatal(`${loop} loop died: ${err instanceof Error ? err.message : String(err)}`));
    new Counter({
      name: 'tidings_forwarder_shed_total',
      help: 'Sends that went on without edges that stayed at their high-water mark longer than zmq_block_timeout (those edges see a gap); libzmq then skips such an edge for every send until it has read its backlog down, so it misses more than this count',
      registers: [registry],
      collect: collectGrowth(() => this.queues.reduce((n, q) => n + q.shed, 0)),
    });
    const queues = this.queues;
    new Gauge({
      name: 'tidings_forwarder_queued_messages',
      help: 'Messages (or batches) waiting in the forwarder to be handed to ZeroMQ, by queue (forwarder-down, forwarder-up, ...): a queue that stays full is a peer that does not keep up',
      labelNames: ['queue'],
      registers: [registry],
      collect() {
        for (const q of queues) this.set({ queue: q.name }, q.length);
      },
    });
  }

  async start(): Promise<void> {
    const c = this.config;
    if (c.forwarder_minor_gc_mb > 0) {
      const gc = exposedGc();
      if (gc) this.gcPacer = new GcPacer(c.forwarder_minor_gc_mb * 1024 * 1024, () => gc({ type: 'minor' }));
      else this.log.warn('V8 refused to expose gc(): forwarder_minor_gc_mb has no effect');
    }
    const hwm = c.zmq_high_water_mark;
    const opts = { sendHighWaterMark: hwm, receiveHighWaterMark: hwm, linger: 0 };

    // Channel messages go in batches of up to DOWN_BATCH_BYTES, publishes of up to MAX_BATCH_BYTES: the pipes
    // carrying them hold as many bytes as `hwm` 2 KB batches (the subscriptions going the other way keep `hwm`).
    const downIn = new XSubscriber({ ...opts, receiveHighWaterMark: downPipeSlots(hwm) });
    const downOut = new XPublisher({ ...opts, sendHighWaterMark: downPipeSlots(hwm), noDrop: true });
    const upIn = new XSubscriber({ ...opts, receiveHighWaterMark: pipeSlots(hwm) });
    const upOut = new XPublisher({ ...opts, sendHighWaterMark: pipeSlots(hwm), noDrop: true });
    const cmdIn = new Router(opts);
    const cmdOut = new Dealer({ ...opts, ...HEARTBEAT });
    let everUp = false;
    cmdOut.events.on('connect', () => {
      this.director = 'up';
      this.heldFlush?.(this.held.splice(0));
      if (everUp) this.log.info({ director: c.director_command_address }, 'director reachable again');
      everUp = true;
    });
    const down = (): void => {
      if (this.director === 'down') return;
      this.director = 'down';
      if (this.stopping) return;
      this.linkLost?.();
      // Nodes and their director often start together: a refusal before the first connection is no outage yet.
      if (everUp) this.log.warn({ director: c.director_command_address }, 'director unreachable: commands are answered with 113 until it is back');
      else this.log.info({ director: c.director_command_address }, 'director not reachable yet: commands are answered with 113 until it is');
    };
    cmdOut.events.on('disconnect', down);
    // Refused (nothing listens there): before the first connection too.
    cmdOut.events.on('connect:retry', () => {
      if (this.director !== 'up') down();
    });
    this.sockets.push(downIn, downOut, upIn, upOut, cmdIn, cmdOut);

    this.links.push(await bindSecured(downOut, c.subscriber_address, 'subscriber', c, this.log));
    this.links.push(await bindSecured(upIn, c.publisher_address, 'publisher', c, this.log));
    this.links.push(await bindSecured(cmdIn, c.command_address, 'command', c, this.log));
    // Every director of a failover group has the same server key (curve_director_key).
    const link = nodeClientLink(c, 'director');
    this.upstream = { downIn, upOut, cmdOut, link };
    if (c.director_command_address.length === 1) this.follow(0);
    else {
      this.watch = new DirectorWatch({
        commandAddresses: c.director_command_address,
        link,
        intervalMs: WATCH_INTERVAL_MS,
        staleMs: WATCH_STALE_MS,
        highWaterMark: 1000,
        log: this.log,
        failed: (err) => this.loops.failed('forwarder-director-watch', err),
      });
      this.watch.on('follow', (index) => this.follow(index));
      this.watch.start();
    }

    // An edge that stops reading holds the node back at most zmq_block_timeout (then it sees a gap: each message
    // shed is followed by a marker tick, see TickRelay); publishes going up wait for the director as long as it
    // takes (nothing downstream would notice their loss).
    const ticks = new TickRelay();
    this.pipe('down', downIn, downOut, { maxBlockMs: this.config.zmq_block_timeout * 1000, maxBytes: queueBytes(hwm), markShed: (shed) => ticks.marker(shed) }, (msg) =>
      // Ticks are renumbered as they are sent, in order with the markers.
      isAllTopic(msg[0]) ? () => ticks.relay(msg) : msg,
    );
    this.pipe('sub', downOut, downIn); // subscriptions of local edges go up
    this.pipe('up', upIn, upOut, { maxBytes: queueBytes(hwm) });
    const pubsub = this.pipe('pubsub', upOut, upIn); // the director's subscribe-all reaches local publishers
    // When the director's publisher link drops, withdraw its subscribe-all from local publishers: XSUB keeps a
    // subscription until told otherwise, so they would keep sending into an XPUB with no subscriber (dropped).
    // The director's XSUB subscribes again when it is back, and they resume.
    upOut.events.on('disconnect', () => {
      if (!this.stopping) pubsub.push([Buffer.from([0])]);
    });
    // While the director is unreachable, commands are answered at once with 113 rather than queued until they time out.
    const unreachable = Buffer.from(JSON.stringify(new TidingsError(ErrorCodes.UNAVAILABLE, `the director is unreachable from node ${c.node_id ?? 'this node'} (${c.director_command_address})`).toBody()));
    const replies = this.pipe('reply', cmdOut, cmdIn);
    // [route..., request id, method, body] -> [route..., request id, "error", body]; a command batch gets
    // one such reply per request in it. With the reply queue full the client's own timeout answers instead.
    const refuse = (msg: Buffer[]): void => {
      const route = msg.slice(0, msg.length - 3);
      const [id, method, body] = msg.slice(msg.length - 3) as [Buffer, Buffer, Buffer];
      if (!isBatchFrames(id, method)) {
        replies.push([...route, id, ERROR, unreachable]);
        return;
      }
      let entries: CommandEntry[];
      try {
        entries = decodeCommandBatch(body);
      } catch {
        return; // malformed: the director would drop it too
      }
      for (const e of entries) {
        const one = Buffer.allocUnsafe(4);
        one.writeUInt32BE(e.id);
        replies.push([...route, one, ERROR, unreachable]);
      }
    };
    const commands = this.pipe('cmd', cmdIn, cmdOut, {}, (msg) => {
      // With a failover group the commands wait for the next active director instead (it takes over in seconds).
      if (msg.length < 4) return msg;
      if (this.director !== 'down' || c.director_command_address.length > 1) {
        this.callers.passed(msg);
        return msg;
      }
      // Held for UNREACHABLE_GRACE_MS in case the link is coming back (a director restarting), bounded; then 113.
      if (this.held.length >= MAX_HELD) {
        refuse(msg);
        return null;
      }
      this.held.push(msg);
      setTimeout(() => {
        const i = this.held.indexOf(msg);
        if (i < 0) return;
        this.held.splice(i, 1);
        refuse(msg);
      }, UNREACHABLE_GRACE_MS).unref();
      return null;
    });
    // Requests in flight on a link that dropped are never answered (a new link is a new route at the
    // director's ROUTER): their callers hear so at once, not at their timeouts (src/cluster/link-lost.ts).
    const lost = Buffer.from(JSON.stringify(new TidingsError(ErrorCodes.UNAVAILABLE, `the director's link to node ${c.node_id ?? 'this node'} dropped with this request in flight: it may or may not have been carried out`).toBody()));
    this.linkLost = () => {
      const callers = this.callers.take();
      for (const route of callers) replies.push([...route, LINK_LOST_ID, ERROR, lost]);
      if (callers.length > 0) this.log.info({ callers: callers.length }, 'director link dropped: callers told their requests in flight are lost');
    };
    this.heldFlush = (msgs) => {
      for (const m of msgs) {
        if (!commands.push(m)) refuse(m);
        else this.callers.passed(m);
      }
    };
    this.log.info(
      {
        subscriber: c.subscriber_address,
        publisher: c.publisher_address,
        command: c.command_address,
        director: { subscriber: c.director_subscriber_address, publisher: c.director_publisher_address, command: c.director_command_address },
        curve: c.curve !== null,
      },
      'forwarder running',
    );
  }

  /** Connect the upstream sockets to director `index` (and away from the one followed before). */
  private follow(index: number): void {
    const u = this.upstream;
    const c = this.config;
    if (!u || index === this.following) return;
    const prev = this.following;
    if (prev >= 0) {
      this.linkLost?.(); // what the old director was asked is answered by nobody now
      u.downIn.disconnect(c.director_subscriber_address[prev]!);
      u.upOut.disconnect(c.director_publisher_address[prev]!);
      u.cmdOut.disconnect(c.director_command_address[prev]!);
    }
    connectSecured(u.downIn, c.director_subscriber_address[index]!, u.link);
    connectSecured(u.upOut, c.director_publisher_address[index]!, u.link);
    connectSecured(u.cmdOut, c.director_command_address[index]!, u.link);
    this.following = index;
    this.switches.inc();
  }

  /**
   * Pass every message of `from` to `to`, as `route` makes it ready (a builder
   * called when its turn to be sent comes), except those `route` takes (null).
   */
  private pipe(path: string, from: Receivable, to: Sendable, opts: SendQueueOptions = {}, route?: (msg: Buffer[]) => Queued | null): SendQueue {
    const queue = new SendQueue(to, this.config.zmq_high_water_mark, this.log, `forwarder-${path}`, opts);
    this.queues.push(queue);
    const passed = this.passed;
    // Batches (src/cluster/batch.ts) pass unopened; the counter counts the messages they carry.
    const batchPath = (['down', 'up', 'cmd', 'reply'] as const).find((p) => p === path) as BatchPath | undefined;
    // Down the broadcast topic go the director's own signals to every edge (ticks), counted apart
    // so `down` counts only what this node's clients asked for.
    const broadcast = path === 'down' ? 'down-broadcast' : null;
    this.running.push(
      this.relay(`forwarder-${path}`, from, (received: Buffer[]) => {
        this.gcPacer.received(received);
        const counted = broadcast && isAllTopic(received[0]) ? broadcast : path;
        passed.set(counted, (passed.get(counted) ?? 0) + (batchPath && counted === path ? messagesIn(batchPath, received) : 1));
        const msg = route ? route(received) : received;
        if (msg === null) return undefined;
        if (queue.push(msg)) return undefined;
        return queue.space().then(() => {
          queue.push(msg);
        });
      }),
    );
    return queue;
  }

  /**
   * Serve `from` message by message, as LoopGuard.run does (a failing message is counted and skipped; a
   * loop that ends while the forwarder is not stopping has died), calling `receive()` directly: the socket's
   * async iterator wraps every receive in one more async function and promise, a cost paid per batch.
   */
  private async relay(loop: string, from: Receivable, handle: (msg: Buffer[]) => Promise<void> | undefined): Promise<void> {
    for (;;) {
      let msg: Buffer[];
      try {
        msg = await from.receive();
      } catch (err) {
        // A socket closed by stop() ends its loop; closed otherwise (or failing), the loop has died.
        if (!this.stopping) this.loops.died(loop, err);
        return;
      }
      try {
        const waiting = handle(msg);
        // Only back pressure returns a promise; the hot path does not.
        if (waiting) await waiting;
      } catch (err) {
        this.loops.failed(loop, err);
      }
    }
  }

  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.watch?.stop();
    await Promise.all(this.queues.map((q) => q.drain(500)));
    for (const q of this.queues) q.close();
    for (const s of this.sockets) s.close();
    await Promise.allSettled(this.running);
    await Promise.allSettled(this.links.splice(0).map((l) => l.release()));
    this.log.info('forwarder stopped');
  }
}
