/**
 * An edge's link to the director's cluster state: it reports connections,
 * joins and leaves (in order, over the one command socket), sends a
 * heartbeat every presence_ttl/3 so the director can drop this edge's
 * connections if it dies silently, and re-sends its full
 * list when the director asks (after a director restart or a lost report).
 * It also finds connections by id for the director's control messages.
 *
 * Order: `join` and `leave` return a promise that resolves once the director
 * has applied the event (the report carrying it, or a snapshot taken after it,
 * was answered). The edge replies to a client's subscribe or unsubscribe only
 * then, so what one client saw answered is applied before anything it, or
 * anyone it told, does next on any node: one user's joins and leaves are
 * applied in the order their replies were given. A report that fails (the
 * director is away) resolves too; the resync that follows repairs presence.
 *
 * Batching: one event report is unanswered at a time. Events that come while
 * it is out wait and leave together in the next report once it is answered
 * (a lone event goes at the end of its turn). Each report costs a ZeroMQ
 * round trip, the director's turn and a wake-up of four threads: under a burst
 * of connects, reports sent every turn (3-4 connects each) made presence about
 * a quarter of a connect's server CPU. A join waits at most one more round trip.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { EdgeServer } from './edge-server.js';
import { ErrorCodes, TidingsError } from '../protocol/errors.js';

/**
 * While the director is unreachable (113, or a request that was in flight when
 * it went) the edge logs that once; a failed report is then a detail.
 */
function levelOf(err: Error, edge: EdgeServer): 'debug' | 'warn' {
  return (err instanceof TidingsError && err.spec === ErrorCodes.UNAVAILABLE) || edge.commands.suspectUnreachable ? 'debug' : 'warn';
}
import { linkLimit } from '../zmq/security.js';

/** A connection the director may act on, native or channelstream-compatible. */
export interface TrackedConnection {
  readonly id: string;
  readonly user: string | null;
  channels(): Iterable<string>;
  subscribeServerSide(channels: readonly string[]): void;
  unsubscribeServerSide(channels: readonly string[]): void;
  /** `replaced`: the same connection id was taken by a newer client. */
  disconnect(replaced?: boolean): void;
}

type Event =
  | { op: 'attach'; conn: string; user: string | null }
  | { op: 'join' | 'leave'; conn: string; channel: string }
  | { op: 'close'; conn: string; poll?: boolean };

/** Events waiting to be sent; past this the edge sends its full list instead. */
const MAX_QUEUED = 100_000;
/** Events per report command. */
const BATCH = 5000;
/** After a failed report or snapshot, the next snapshot goes this much later (each failure waits a command timeout first). */
const RESYNC_RETRY_MS = 250;

const links = new WeakMap<EdgeServer, StateLink>();

/** The one link of an edge, created on first use. */
export function stateLinkOf(edge: EdgeServer, log: Logger): StateLink {
  let link = links.get(edge);
  if (!link) {
    link = new StateLink(edge, log);
    links.set(edge, link);
  }
  return link;
}

export class StateLink {
  /** This process' incarnation: a restarted edge with the same id is a new instance. */
  readonly instance = randomBytes(9).toString('base64url');
  readonly conns = new Map<string, TrackedConnection>();
  /**
   * Ids the director is attaching here right now (a conn_attach in flight):
   * a snapshot taken meanwhile cannot list them yet, and says so, so the
   * director does not let them go.
   */
  readonly attaching = new Set<string>();
  private queue: Event[] = [];
  /** Resolvers of the queued events, in the same order. */
  private acks: Array<() => void> = [];
  /** Resolvers of events the next snapshot covers (they came while a full resync was due). */
  private syncWaiters: Array<() => void> = [];
  private scheduled = false;
  /** An event report is out, unanswered (the next waits for it: see Batching above). */
  private reporting = false;
  private needSync = true;
  private syncing = false;
  /** Snapshots begun so far, to tell which reports a snapshot already covers. */
  private syncs = 0;
  private timer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Snapshots failed in a row (backoff of retrySync). */
  private failedSyncs = 0;

  constructor(
    private readonly edge: EdgeServer,
    private readonly log: Logger,
  ) {
    edge.drainHooks.push(() => this.goodbye());
  }

  /**
   * The edge is stopping and has closed its clients: tell the director at
   * once (bounded wait), so they leave presence now rather than after
   * presence_ttl (a page that failed over would otherwise show a ghost tab).
   */
  private async goodbye(): Promise<void> {
    if (!this.timer) return; // never reported anything
    clearInterval(this.timer);
    this.timer = null;
    this.queue = [];
    this.needSync = true; // nothing more goes out
    await this.edge.commands.request('edge_report', { edge: this.edge.edgeId, instance: this.instance, events: [], goodbye: true }, 1000).catch((err: Error) => {
      this.log.debug({ err: err.message }, 'goodbye report not answered; the director will expire this edge after presence_ttl');
    });
  }

  /** Start the heartbeat; done on the first connection, so a route-only edge sends none. */
  private start(): void {
    if (this.timer) return;
    const ms = Math.max(500, (this.edge.config.presence_ttl * 1000) / 3);
    this.timer = setInterval(() => this.heartbeat(), ms);
    this.timer.unref();
    this.heartbeat();
  }

  attach(conn: TrackedConnection): void {
    // Listed before the first heartbeat's snapshot is taken: a snapshot without it would let the director drop it.
    this.conns.set(conn.id, conn);
    this.start();
    this.push({ op: 'attach', conn: conn.id, user: conn.user });
  }

  /** Report a join; resolves once the director has applied it. */
  join(id: string, channel: string): Promise<void> {
    return this.conns.has(id) ? this.push({ op: 'join', conn: id, channel }) : Promise.resolve();
  }

  /** Report a leave; resolves once the director has applied it. */
  leave(id: string, channel: string): Promise<void> {
    return this.conns.has(id) ? this.push({ op: 'leave', conn: id, channel }) : Promise.resolve();
  }

  /**
   * The connection is gone; also for one the director attached here that
   * never got going. `poll`: a long poll ended (its client polls again soon).
   */
  close(id: string, poll = false): void {
    this.conns.delete(id);
    void this.push(poll ? { op: 'close', conn: id, poll } : { op: 'close', conn: id });
  }

  /** Close `conn` unless a newer connection here has taken its id. */
  closeIf(conn: TrackedConnection, poll = false): void {
    const current = this.conns.get(conn.id);
    if (current !== undefined && current !== conn) return;
    this.close(conn.id, poll);
  }

  private push(e: Event): Promise<void> {
    if (this.needSync) return this.whenSynced(); // the next snapshot carries it
    if (this.queue.length >= MAX_QUEUED) {
      this.log.warn({ queued: this.queue.length }, 'presence report queue full; sending a full snapshot instead');
      this.queue = [];
      this.syncWaiters.push(...this.acks.splice(0));
      this.needSync = true;
      return this.whenSynced();
    }
    return new Promise((resolve) => {
      this.queue.push(e);
      this.acks.push(resolve);
      this.scheduleFlush();
    });
  }

  /** Send the queued events at the end of this turn, unless a report is out (its answer sends them). */
  private scheduleFlush(): void {
    if (this.scheduled || this.reporting || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Resolves when a snapshot taken from now on has been answered; asks for one soon. */
  private whenSynced(): Promise<void> {
    return new Promise((resolve) => {
      this.syncWaiters.push(resolve);
      if (!this.syncing) setImmediate(() => this.needSync && this.sync());
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.reporting || this.queue.length === 0) return;
    try {
      const events = this.queue.splice(0, BATCH);
      this.reporting = true;
      this.report({ events }, this.acks.splice(0, events.length), () => {
        this.reporting = false;
        this.scheduleFlush();
      });
    } catch (err) {
      this.reporting = false;
      this.lost(err);
    }
  }

  /** Whatever fails here ends no loop: the report is counted, and the next heartbeat sends the full list. */
  private lost(err: unknown): void {
    this.edge.loops.failed('state-link', err);
    this.queue = [];
    this.needSync = true;
  }

  /** `settled`: called once the report is answered or has failed, whatever the outcome. */
  private report(extra: Record<string, unknown>, acks: Array<() => void> = [], settled?: () => void): void {
    const generation = this.syncs;
    const done = (): void => {
      for (const a of acks) a();
    };
    this.edge.commands
      .request<{ resync?: boolean } | null>('edge_report', { edge: this.edge.edgeId, instance: this.instance, ...extra })
      .then(
        (r) => {
          // The director does not know this edge process (it is new, or the director restarted):
          // send the full list now rather than at the next heartbeat, so no join or leave waits.
          // A snapshot begun after this report was sent already covers it.
          if (r?.resync === true && generation === this.syncs) {
            this.needSync = true;
            this.syncWaiters.push(...acks);
            this.sync();
            return;
          }
          done();
        },
        (err: Error) => {
          // A lost report may have held a join or a leave: the full list goes again shortly (a director
          // failover or restart lasts seconds; presence should be right as soon as a director answers).
          this.log[levelOf(err, this.edge)]({ err: err.message }, 'presence report failed; will resync');
          this.needSync = true;
          this.retrySync();
          done();
        },
      )
      .catch((err) => this.lost(err))
      .finally(settled);
  }

  private heartbeat(): void {
    try {
      if (this.needSync) this.sync();
      else this.report({ events: [] });
    } catch (err) {
      this.lost(err);
    }
  }

  /** Send the full list; events queued meanwhile are covered by it. */
  private sync(): void {
    if (this.syncing) return;
    this.syncing = true;
    this.syncs++;
    this.needSync = false;
    this.queue = [];
    // The snapshot covers every event so far: queued ones and those waiting for it.
    const covered = [...this.acks.splice(0), ...this.syncWaiters.splice(0)];
    const [snapshot, ...rest] = splitSnapshot(
      [...this.conns.values()].map((c) => ({ conn: c.id, user: c.user, channels: [...c.channels()] })),
      linkLimit(this.edge.config) / 2,
    );
    let failed = false;
    const fail = (err: Error): void => {
      if (failed) return;
      failed = true;
      this.log[levelOf(err, this.edge)]({ err: err.message }, 'presence snapshot failed; will retry');
      this.needSync = true;
    };
    const attaching = [...this.attaching];
    const sent = this.edge.commands
      .request<{ resync: boolean }>('edge_report', { edge: this.edge.edgeId, instance: this.instance, snapshot, ...(attaching.length > 0 ? { attaching } : {}) })
      .then(() => undefined, fail);
    // A snapshot larger than one command frame may carry: the rest follows as attach and join
    // events, sent now so they stay in order ahead of anything queued later.
    const more = rest.map((events) => this.edge.commands.request('edge_report', { edge: this.edge.edgeId, instance: this.instance, events }).then(() => undefined, fail));
    void Promise.all([sent, ...more]).finally(() => {
      this.syncing = false;
      for (const a of covered) a();
      if (!failed) {
        this.failedSyncs = 0;
        return;
      }
      this.failedSyncs++;
      // Events that came during a failed snapshot wait for the next one: ask for it now;
      // otherwise the full list goes again shortly (a director takeover lasts seconds).
      if (this.syncWaiters.length > 0 && this.needSync) setImmediate(() => this.needSync && this.sync());
      else this.retrySync();
    });
  }

  /**
   * Send the full list again soon rather than at the next heartbeat: after
   * RESYNC_RETRY_MS, doubling while snapshots keep failing, at most a
   * heartbeat interval (one retry pending at a time).
   */
  private retrySync(): void {
    if (this.retryTimer) return;
    const heartbeatMs = Math.max(500, (this.edge.config.presence_ttl * 1000) / 3);
    const delay = Math.min(heartbeatMs, RESYNC_RETRY_MS * 2 ** Math.min(this.failedSyncs, 8));
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.needSync && this.timer) this.sync();
    }, delay);
    this.retryTimer.unref();
  }

  /** The director's control messages about connections held here. */
  onControl(body: Record<string, unknown>): void {
    const ids = body['conns'];
    if (!Array.isArray(ids)) return;
    const channels = Array.isArray(body['channels']) ? (body['channels'].filter((c) => typeof c === 'string') as string[]) : [];
    for (const id of ids) {
      const conn = typeof id === 'string' ? this.conns.get(id) : undefined;
      if (!conn) continue;
      try {
        switch (body['op']) {
          case 'subscribe':
            conn.subscribeServerSide(channels);
            break;
          case 'unsubscribe':
            conn.unsubscribeServerSide(channels);
            break;
          case 'disconnect':
            conn.disconnect(body['replaced'] === true);
            break;
        }
      } catch (err) {
        // One connection's failure; the others named in the same message are still served.
        this.edge.loops.failed('edge-control', err, { conn: id, op: body['op'] });
      }
    }
  }
}

interface SnapshotEntry {
  conn: string;
  user: string | null;
  channels: string[];
}

/**
 * The full list as one snapshot within `budget` bytes, then, past that,
 * batches of attach and join events (at most BATCH each, within the budget).
 */
export function splitSnapshot(entries: SnapshotEntry[], budget: number): [SnapshotEntry[], ...Event[][]] {
  const snapshot: SnapshotEntry[] = [];
  const batches: Event[][] = [];
  let size = 0;
  let i = 0;
  for (; i < entries.length; i++) {
    const n = Buffer.byteLength(JSON.stringify(entries[i]));
    if (size + n > budget && snapshot.length > 0) break;
    snapshot.push(entries[i]!);
    size += n;
  }
  let batch: Event[] = [];
  size = 0;
  const add = (e: Event): void => {
    const n = Buffer.byteLength(JSON.stringify(e));
    if (batch.length > 0 && (batch.length >= BATCH || size + n > budget)) {
      batches.push(batch);
      batch = [];
      size = 0;
    }
    batch.push(e);
    size += n;
  };
  for (; i < entries.length; i++) {
    const e = entries[i]!;
    add({ op: 'attach', conn: e.conn, user: e.user });
    for (const channel of e.channels) add({ op: 'join', conn: e.conn, channel });
  }
  if (batch.length > 0) batches.push(batch);
  return [snapshot, ...batches];
}
