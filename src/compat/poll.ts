/**
 * channelstream's long-polling transport, `GET /listen?conn_id=` (for
 * clients that cannot hold a websocket): each request attaches the
 * registered connection here, receives what was kept for it since its last
 * poll (catch-up, `catchup: true`) and what arrives live, and answers a
 * JSON array of objects, as channelstream's await_data: at the first item
 * it waits until 0.25 s pass without another, and with nothing it answers
 * `[]` after 5 s (channelstream's wake_connections_after). The connection
 * then waits for the next poll for presence_ttl seconds (channelstream
 * collects it after 15 s), keeping its frames.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { EdgeServer } from '../edge/edge-server.js';
import type { SharedPush } from '../edge/frames.js';
import type { StateLink } from '../edge/state-link.js';
import { CompatSession, type CsView, type EndReason } from './session.js';
import type { Obj } from './shape.js';

/** channelstream's wake_connections_after: an empty answer after this long. */
export const WAKE_MS = 5000;
/** After the first item, the answer goes once no other came for this long. */
export const QUIET_MS = 250;

export class PollSession extends CompatSession {
  private readonly items: Obj[] = [];
  private bytes = 0;
  private quiet: NodeJS.Timeout | null = null;
  private readonly wake: NodeJS.Timeout;
  private answered = false;

  constructor(
    id: string,
    user: string,
    private readonly res: ServerResponse,
    private readonly send: (res: ServerResponse, items: Obj[]) => void,
    edge: EdgeServer,
    link: StateLink,
    log: Logger,
    onClosing: (c: CompatSession) => boolean,
  ) {
    super(id, user, edge, link, log, onClosing, true);
    this.wake = setTimeout(() => this.answer(), WAKE_MS);
    // The client gave up (aborted, or its proxy timed out): the connection waits for its next poll.
    res.once('close', () => this.end('client'));
  }

  protected emit(obj: Obj): void {
    if (this.answered) return;
    this.items.push(obj);
    // Bounded like a websocket's send buffer: a full answer goes at once.
    this.bytes += JSON.stringify(obj).length;
    if (this.bytes >= this.edge.config.client_send_buffer) {
      this.answer();
      return;
    }
    if (this.quiet) clearTimeout(this.quiet);
    this.quiet = setTimeout(() => this.answer(), QUIET_MS);
  }

  protected emitLive(_push: SharedPush, view: CsView): void {
    this.emit(view.obj!);
  }

  protected end(reason: EndReason): void {
    if (reason === 'client' || reason === 'failed') {
      if (!this.answered && reason === 'failed' && !this.res.headersSent) {
        // Nothing to show, and the stream could not be set up: a server error the JS client reports.
        this.answered = true;
        this.res.writeHead(503, { 'content-type': 'application/json' }).end('[]');
      }
      this.finish();
      return;
    }
    this.answer();
  }

  /** Answer with what was gathered, then let the connection go until the next poll. */
  private answer(): void {
    if (!this.answered) {
      this.answered = true;
      if (!this.res.closed && !this.res.writableEnded) this.send(this.res, this.items);
    }
    this.finish();
  }

  private finish(): void {
    clearTimeout(this.wake);
    if (this.quiet) clearTimeout(this.quiet);
    this.cleanup();
  }
}
