/**
 * A channelstream websocket client (`/ws?conn_id=`): a connection registered
 * with `/connect` on any node. It receives JSON arrays of channelstream
 * objects, a `[]` heartbeat every 5 s, and never publishes (any frame it
 * sends only marks it active). The channelstream frame of a push is built
 * once per push (cached on the SharedPush), not once per subscriber.
 */
import type { WebSocket } from 'ws';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { CloseCodes, type CloseSpec } from '../protocol/errors.js';
import type { EdgeServer } from '../edge/edge-server.js';
import { Outbox, closeGraceMs } from '../edge/outbox.js';
import { HeldPushes } from '../edge/held-pushes.js';
import { textFrame, type SharedPush } from '../edge/frames.js';
import type { Listener } from '../edge/hub.js';
import type { StateLink, TrackedConnection } from '../edge/state-link.js';
import { channelstreamObject, excludedUsers } from './shape.js';

interface CsView {
  frame: Buffer | null;
  exclude: readonly string[];
  /** For private messages to users in a channel: the channel the receiver must be in. */
  pmChannel: string | null;
}

/** The channelstream view of a push, computed once and kept on the push. */
export function csView(push: SharedPush): CsView {
  if (push.derived !== undefined) return push.derived as CsView;
  let view: CsView = { frame: null, exclude: [], pmChannel: null };
  try {
    const native = JSON.parse(push.json.toString('utf8')) as Record<string, unknown>;
    const obj = channelstreamObject(native);
    if (obj) {
      const pmChannel = native['type'] === 'direct' && typeof obj['channel'] === 'string' ? obj['channel'] : null;
      view = { frame: textFrame(Buffer.from(JSON.stringify([obj]))), exclude: excludedUsers(native), pmChannel };
    }
  } catch {
    // not JSON: nothing a channelstream client could read
  }
  push.derived = view;
  return view;
}

export const HEARTBEAT_FRAME = textFrame(Buffer.from('[]'));

/** Stored messages replayed on one catch-up, per channel. */
const MAX_CATCHUP = 1000;

export class CompatConnection implements Listener, TrackedConnection {
  readonly subscriptions = new Set<string>();
  private readonly outbox: Outbox;
  /** Live pushes held per channel while its catch-up is read. */
  private readonly held = new HeldPushes();
  lastSeen = Date.now();
  closed = false;

  constructor(
    readonly id: string,
    readonly user: string,
    private readonly ws: WebSocket,
    socket: Socket,
    private readonly edge: EdgeServer,
    private readonly link: StateLink,
    private readonly log: Logger,
    private readonly onClosed: (c: CompatConnection) => void,
  ) {
    this.outbox = new Outbox(socket, edge.config.client_send_buffer, this, edge.scheduler);
    ws.on('message', () => (this.lastSeen = Date.now()));
    ws.on('close', () => this.cleanup());
    ws.on('error', (err) => log.debug({ err: err.message }, 'websocket error'));
  }

  /**
   * Join the user's and channels' streams. With `catchupSince` (the time the
   * client was last connected), stored messages newer than that are sent
   * first, marked `catchup: true`, while live ones are held back meanwhile.
   */
  async start(channels: readonly string[], catchupSince: number | null = null): Promise<void> {
    await this.edge.hub.joinUser(this, this.user);
    if (this.closed) {
      // The client left while its user stream was being set up: cleanup has run, undo the join.
      this.edge.hub.leaveUser(this, this.user);
      return;
    }
    this.link.attach(this);
    this.subscribeServerSide(channels, catchupSince);
  }

  channels(): Iterable<string> {
    return this.subscriptions;
  }

  deliver(push: SharedPush): void {
    if (this.closed || (push.exceptUser !== null && push.exceptUser === this.user)) return;
    const verdict = this.held.offer(push);
    if (verdict === 'held') return;
    if (verdict === 'overflow') {
      this.onOverflow();
      return;
    }
    const view = csView(push);
    if (!view.frame || view.exclude.includes(this.user)) return;
    if (view.pmChannel !== null && !this.subscriptions.has(view.pmChannel)) return;
    this.outbox.push(view.frame);
  }

  onGap(channel: string): void {
    this.close(CloseCodes.MESSAGE_GAP, channel);
  }

  onOverflow(): void {
    this.edge.metrics.slowConsumers.inc();
    this.outbox.close();
    this.close(CloseCodes.SLOW_CONSUMER);
  }

  heartbeat(now: number): void {
    if (now - this.lastSeen > this.edge.config.idle_timeout * 1000) this.close(CloseCodes.IDLE_TIMEOUT);
    else this.outbox.push(HEARTBEAT_FRAME);
  }

  subscribeServerSide(channels: readonly string[], catchupSince: number | null = null): void {
    for (const channel of channels) {
      if (this.subscriptions.has(channel)) continue;
      this.subscriptions.add(channel);
      if (catchupSince !== null) this.held.hold(channel);
      this.edge.hub.joinChannel(this, channel).then(
        async (pos) => {
          if (this.closed || !this.subscriptions.has(channel)) {
            this.edge.hub.leaveChannel(this, channel);
            return;
          }
          this.link.join(this.id, channel);
          if (catchupSince !== null) await this.catchUp(channel, catchupSince, pos.offset);
        },
        (err: Error) => {
          this.subscriptions.delete(channel);
          this.held.release(channel, Infinity);
          this.log.warn({ channel, err: err.message }, 'channelstream subscribe failed');
        },
      );
    }
  }

  /** Send the channel's stored messages newer than `since` (up to the live position), then what was held. */
  private async catchUp(channel: string, since: number, upTo: number): Promise<void> {
    const objects: Record<string, unknown>[] = [];
    try {
      const h = await this.edge.commands.request<{ messages: Array<Record<string, unknown>> }>('history', { channel, limit: MAX_CATCHUP, until: upTo });
      for (const m of h.messages) {
        if (typeof m['time'] !== 'number' || m['time'] <= since) continue;
        if ((m['data'] as Record<string, unknown> | null)?.['deleted'] === true || excludedUsers(m).includes(this.user)) continue;
        const o = channelstreamObject(m);
        if (o) objects.push({ ...o, catchup: true });
      }
    } catch (err) {
      this.log.warn({ channel, err: (err as Error).message }, 'channelstream catch-up failed');
    }
    const held = this.held.release(channel, upTo);
    if (this.closed) return;
    if (objects.length > 0) this.outbox.push(textFrame(Buffer.from(JSON.stringify(objects))));
    for (const push of held) this.deliver(push);
  }

  unsubscribeServerSide(channels: readonly string[]): void {
    for (const channel of channels) {
      if (!this.subscriptions.delete(channel)) continue;
      this.edge.hub.leaveChannel(this, channel);
      this.link.leave(this.id, channel);
    }
  }

  disconnect(): void {
    this.close(CloseCodes.DISCONNECTED);
  }

  close(spec: CloseSpec, detail?: string): void {
    if (this.closed) return;
    this.outbox.flushAll();
    try {
      this.ws.close(spec.code, detail ? `${spec.reason}: ${detail}`.slice(0, 120) : spec.reason);
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), closeGraceMs(spec)).unref();
    this.cleanup();
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.outbox.close();
    for (const ch of this.subscriptions) this.edge.hub.leaveChannel(this, ch);
    this.subscriptions.clear();
    this.edge.hub.leaveUser(this, this.user);
    // The director keeps a registered connection (and its presence) until presence_ttl, so the client may come back.
    this.link.close(this.id);
    this.onClosed(this);
  }
}
