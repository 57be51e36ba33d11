/**
 * What a channelstream client (a `/ws?conn_id=` websocket or a `/listen`
 * long poll) does on an edge, whatever carries its frames: join the
 * connection's user stream and channels, have the director confirm each
 * stream live (the frames kept meanwhile come first, see
 * director/catchup.ts), filter pushes as channelstream does, and follow the
 * server API's subscribe, unsubscribe and disconnect.
 *
 * Until the director's `cs_ready` marker for a stream arrives, live pushes of
 * that stream are not shown: the director kept them and sends them, in
 * order, before the marker.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { EdgeServer } from '../edge/edge-server.js';
import { textFrame, type SharedPush } from '../edge/frames.js';
import type { Listener } from '../edge/hub.js';
import type { StateLink, TrackedConnection } from '../edge/state-link.js';
import { channelstreamObject, excludedUsers, type Obj } from './shape.js';

/** The channelstream view of a push, computed once per push and kept on it. */
export interface CsView {
  /** The object, or null when channelstream clients get nothing for this push. */
  obj: Obj | null;
  /** A websocket frame holding `[obj]`, built on first use. */
  frame: Buffer | null;
  exclude: readonly string[];
  /** For private messages to users in a channel: the channel the receiver must be in. */
  pmChannel: string | null;
}

function viewOf(native: Obj): CsView {
  const obj = channelstreamObject(native);
  if (!obj) return { obj: null, frame: null, exclude: [], pmChannel: null };
  const pmChannel = native['type'] === 'direct' && typeof obj['channel'] === 'string' ? obj['channel'] : null;
  return { obj, frame: null, exclude: excludedUsers(native), pmChannel };
}

export function csView(push: SharedPush): CsView {
  if (push.derived !== undefined) return push.derived as CsView;
  let view: CsView = { obj: null, frame: null, exclude: [], pmChannel: null };
  try {
    view = viewOf(JSON.parse(push.json.toString('utf8')) as Obj);
  } catch {
    // not JSON: nothing a channelstream client could read
  }
  push.derived = view;
  return view;
}

/** The frame of a view: `[obj]`, once per push. */
export function viewFrame(view: CsView): Buffer {
  return (view.frame ??= textFrame(Buffer.from(JSON.stringify([view.obj]))));
}

export type EndReason = 'disconnected' | 'replaced' | 'failed' | 'gap' | 'slow' | 'client';

export abstract class CompatSession implements Listener, TrackedConnection {
  readonly subscriptions = new Set<string>();
  /** Channels whose director marker arrived: their live pushes are shown. */
  private readonly ready = new Set<string>();
  private userReady = false;
  /** Confirmations sent whose marker has not come yet, by token. */
  private readonly awaiting = new Map<string, NodeJS.Timeout>();
  closed = false;

  constructor(
    readonly id: string,
    readonly user: string,
    protected readonly edge: EdgeServer,
    protected readonly link: StateLink,
    protected readonly log: Logger,
    /** Told when the client goes; answers whether to tell the director (false when a newer client took the id). */
    private readonly onClosing: (s: CompatSession) => boolean,
    private readonly poll: boolean,
  ) {}

  /** Show one object to the client (a frame of its own on a websocket). */
  protected abstract emit(obj: Obj): void;
  /** Show a live push, whose view passed the filters. */
  protected abstract emitLive(push: SharedPush, view: CsView): void;
  /** Close the transport; `cleanup` must follow. */
  protected abstract end(reason: EndReason): void;

  /** Join the user's stream and the channels, then have the director confirm them. */
  start(channels: readonly string[]): void {
    // Listed as subscribed before the link reports this connection: a snapshot must not say it left them.
    for (const ch of channels) this.subscriptions.add(ch);
    this.link.attach(this);
    const joins: Array<Promise<string | null>> = [
      this.edge.hub.joinUser(this, this.user).then(
        () => 'user',
        (err: Error) => {
          this.log.warn({ err: err.message }, 'channelstream user stream not joined');
          return null;
        },
      ),
    ];
    for (const ch of channels) joins.push(this.joinHub(ch));
    void Promise.all(joins).then((done) => {
      if (this.closed) return;
      // A stream that could not be joined would never be confirmed: let the client reconnect instead.
      if (done.includes(null)) {
        this.end('failed');
        return;
      }
      this.confirm(done.filter((x): x is string => x !== null && x !== '' && x !== 'user'), true);
    });
  }

  /** Subscribe to a channel's stream; resolves with the channel when live, '' when no longer wanted, null when it failed. */
  private join(channel: string): Promise<string | null> {
    if (this.subscriptions.has(channel)) return Promise.resolve('');
    this.subscriptions.add(channel);
    return this.joinHub(channel);
  }

  private joinHub(channel: string): Promise<string | null> {
    return this.edge.hub.joinChannel(this, channel).then(
      () => {
        if (this.closed || !this.subscriptions.has(channel)) {
          this.edge.hub.leaveChannel(this, channel);
          return '';
        }
        this.link.join(this.id, channel);
        return channel;
      },
      (err: Error) => {
        this.subscriptions.delete(channel);
        this.log.warn({ channel, err: err.message }, 'channelstream subscribe failed');
        return null;
      },
    );
  }

  /** Tell the director these streams are live here; its kept frames and a marker follow on the SUB stream. */
  private confirm(channels: string[], user: boolean): void {
    if (this.closed) return;
    const token = randomBytes(6).toString('base64url');
    // The marker must come within the command timeout after the reply; otherwise the client would miss frames forever.
    const limit = this.edge.config.command_timeout * 2000;
    this.awaiting.set(
      token,
      setTimeout(() => {
        this.log.warn({ channels }, 'channelstream catch-up marker did not arrive; closing');
        this.end('failed');
      }, limit),
    );
    this.edge.commands.request('conn_catchup', { conn_id: this.id, instance: this.link.instance, channels, user, token }).catch((err: Error) => {
      this.log.warn({ err: err.message }, 'channelstream catch-up failed; closing');
      this.end('failed');
    });
  }

  // --- Listener ---------------------------------------------------------------------

  deliver(push: SharedPush): void {
    if (this.closed || (push.exceptUser !== null && push.exceptUser === this.user)) return;
    if (push.channel === null ? !this.userReady : !this.ready.has(push.channel)) return; // kept by the director until ready
    const view = csView(push);
    if (this.accepts(view)) this.emitLive(push, view);
  }

  private accepts(view: CsView): boolean {
    if (!view.obj || view.exclude.includes(this.user)) return false;
    return view.pmChannel === null || this.subscriptions.has(view.pmChannel);
  }

  onGap(): void {
    this.end('gap');
  }

  /** The director's kept frames and ready markers for this connection. */
  onControl(body: Obj): void {
    if (this.closed) return;
    if (body['op'] === 'cs_frame') {
      if (body['except'] === this.user || typeof body['push'] !== 'object' || body['push'] === null) return;
      const view = viewOf(body['push'] as Obj);
      if (!this.accepts(view)) return;
      // channelstream marks every replayed frame catchup: true, whatever its type.
      this.emit(body['catchup'] === true ? { ...view.obj, catchup: true } : view.obj!);
      return;
    }
    if (body['op'] === 'cs_reconfirm') {
      // The director let this connection go and took it back: it keeps frames again until every stream is confirmed anew.
      this.ready.clear();
      this.userReady = false;
      this.confirm([...this.subscriptions], true);
      return;
    }
    if (body['op'] === 'cs_ready') {
      const token = body['token'];
      if (typeof token === 'string') {
        clearTimeout(this.awaiting.get(token));
        this.awaiting.delete(token);
      }
      if (Array.isArray(body['channels'])) for (const ch of body['channels']) if (typeof ch === 'string' && this.subscriptions.has(ch)) this.ready.add(ch);
      if (body['user'] === true) this.userReady = true;
    }
  }

  // --- TrackedConnection ---------------------------------------------------------------

  channels(): Iterable<string> {
    return this.subscriptions;
  }

  subscribeServerSide(channels: readonly string[]): void {
    for (const ch of channels) {
      void this.join(ch).then((live) => {
        if (live === null) this.end('failed');
        else if (live !== '') this.confirm([live], false);
      });
    }
  }

  unsubscribeServerSide(channels: readonly string[]): void {
    for (const ch of channels) {
      if (!this.subscriptions.delete(ch)) continue;
      this.ready.delete(ch);
      this.edge.hub.leaveChannel(this, ch);
      this.link.leave(this.id, ch);
    }
  }

  disconnect(replaced = false): void {
    this.end(replaced ? 'replaced' : 'disconnected');
  }

  /** Leave every stream and tell the director this client is gone. */
  protected cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.awaiting.values()) clearTimeout(t);
    this.awaiting.clear();
    for (const ch of this.subscriptions) this.edge.hub.leaveChannel(this, ch);
    this.subscriptions.clear();
    this.ready.clear();
    this.edge.hub.leaveUser(this, this.user);
    // A registered connection stays with the director for reattach_window (websocket) or presence_ttl (long poll).
    if (this.onClosing(this)) this.link.closeIf(this, this.poll);
  }
}
