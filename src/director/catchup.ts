/**
 * channelstream catch-up: for each registered connection, the frames it
 * would have received while no client was there to receive them (channelstream's
 * `store_frames`), and the frames that arrive while a client is attaching, before
 * its edge's subscriptions are confirmed live.
 *
 * A connection watches (queues the pushes of) every one of its channels, and
 * its user's direct pushes, that its edge has not confirmed. While no edge
 * holds it ("away", after /connect, after its websocket closed, between long
 * polls) those frames are catch-up (`catchup: true`) and channels configured
 * with `store_frames: false` keep none. Once a client attaches, every
 * unconfirmed channel is queued regardless, and marked live (`catchup: false`).
 * The edge confirms a channel when its subscription is live; the director then
 * sends the queued frames down the edge's topic, followed by a ready marker,
 * on the same ordered stream as the pushes: whatever the edge received before
 * the marker is in the queue, whatever came after is not.
 *
 * Bounded: `maxBytes` and MAX_FRAMES per connection, `maxTotalBytes` for the
 * director. A connection whose queue would pass a bound is dropped (its
 * presence parts, its client is told the connection is gone and reconnects
 * through /connect); counted in tidings_director_catchup_overflow_total.
 * The pushes are shared Buffers, so the bytes counted are an upper bound of
 * the memory held. Pure: no I/O; the caller sends.
 */
import type { ConnRecord } from './presence.js';

/** Frames one connection may hold. */
export const MAX_FRAMES = 10_000;

export interface QueuedFrame {
  /** The native push JSON, as sent down. */
  push: Buffer;
  /** The channel, or null for a direct push to the user. */
  channel: string | null;
  /** A user whose connections skip it (events about that user). */
  except: string | null;
  /** Queued while no client held the connection: sent as catch-up. */
  catchup: boolean;
}

interface Queue {
  readonly rec: ConnRecord;
  away: boolean;
  /** Channels the holding edge confirmed live (reset when another client attaches). */
  readonly confirmed: Set<string>;
  /** Channels whose pushes are queued (the connection's channels its edge has not confirmed). */
  readonly watched: Set<string>;
  watchesUser: boolean;
  frames: QueuedFrame[];
  bytes: number;
}

export class CatchupQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly byChannel = new Map<string, Set<Queue>>();
  private readonly byUser = new Map<string, Set<Queue>>();
  totalBytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly maxTotalBytes: number,
    /** Whether a channel keeps frames for connections that are away (its store_frames). */
    private readonly storesFrames: (channel: string) => boolean,
    /** A connection's queue passed a bound: the caller drops the connection. */
    private readonly onOverflow: (rec: ConnRecord) => void,
  ) {}

  get size(): number {
    return this.queues.size;
  }

  framesOf(id: string): number {
    return this.queues.get(id)?.frames.length ?? 0;
  }

  // --- following the connection ---------------------------------------------------

  /** No edge holds the connection (registered, websocket closed, between polls): watch everything. */
  away(rec: ConnRecord): void {
    this.watchAll(rec, true);
  }

  /** An edge holds it now; nothing is confirmed yet. Frames queued while away stay catch-up. */
  attached(rec: ConnRecord): void {
    this.watchAll(rec, false);
  }

  joined(rec: ConnRecord, channel: string): void {
    const q = this.queues.get(rec.id) ?? this.create(rec, rec.edge === null);
    if (!q.confirmed.has(channel)) this.watch(q, channel);
  }

  left(rec: ConnRecord, channel: string): void {
    const q = this.queues.get(rec.id);
    if (!q) return;
    this.unwatch(q, channel);
    q.confirmed.delete(channel);
    // channelstream catches a connection up on its current channels only.
    this.keep(q, (f) => f.channel !== channel);
  }

  removed(rec: ConnRecord): void {
    const q = this.queues.get(rec.id);
    if (q) this.destroy(q);
  }

  /**
   * The edge confirmed these channels (and the user's stream) live: stop
   * watching them and return their queued frames, oldest first.
   */
  confirm(id: string, channels: readonly string[], user: boolean): QueuedFrame[] {
    const q = this.queues.get(id);
    if (!q) return [];
    const set = new Set(channels);
    for (const c of set) {
      this.unwatch(q, c);
      q.confirmed.add(c);
    }
    if (user) this.unwatchUser(q);
    const out: QueuedFrame[] = [];
    this.keep(q, (f) => {
      const mine = f.channel === null ? user : set.has(f.channel);
      if (mine) out.push(f);
      return !mine;
    });
    return out;
  }

  /** The channels of `channels` the holding edge has not confirmed. */
  unconfirmed(id: string, channels: Iterable<string>): string[] {
    const q = this.queues.get(id);
    return q ? [...channels].filter((c) => !q.confirmed.has(c)) : [];
  }

  // --- pushes -------------------------------------------------------------------

  onPush(kind: 'channel' | 'user', name: string, push: Buffer, except: string | null): void {
    const set = (kind === 'channel' ? this.byChannel : this.byUser).get(name);
    if (!set) return;
    const channel = kind === 'channel' ? name : null;
    for (const q of [...set]) {
      if (q.away && channel !== null && !this.storesFrames(channel)) continue;
      this.append(q, { push, channel, except, catchup: q.away });
    }
  }

  /**
   * An edit or delete of message `uuid`: queued copies of it follow, as
   * channelstream alters its stored frames (an edit changes the editable
   * keys, a delete removes the message; the event itself is queued as usual).
   */
  amend(kind: 'channel' | 'user', name: string, uuid: string, edit: ((data: Record<string, unknown>) => void) | null): void {
    const set = (kind === 'channel' ? this.byChannel : this.byUser).get(name);
    if (!set) return;
    for (const q of set) {
      const next: QueuedFrame[] = [];
      let changed = false;
      for (const f of q.frames) {
        if (f.channel !== (kind === 'channel' ? name : null) || !f.push.includes(uuid)) {
          next.push(f);
          continue;
        }
        const push = JSON.parse(f.push.toString('utf8')) as Record<string, unknown>;
        const data = push['data'] as Record<string, unknown> | null;
        if ((push['type'] !== 'message' && push['type'] !== 'direct') || !data || data['uuid'] !== uuid || data['type'] !== 'message') {
          next.push(f);
          continue;
        }
        changed = true;
        if (edit === null) {
          q.bytes -= f.push.length;
          this.totalBytes -= f.push.length;
          continue;
        }
        edit(data);
        const bytes = Buffer.from(JSON.stringify(push));
        q.bytes += bytes.length - f.push.length;
        this.totalBytes += bytes.length - f.push.length;
        next.push({ ...f, push: bytes });
      }
      if (changed) q.frames = next;
    }
  }

  // --- internals -------------------------------------------------------------------

  private create(rec: ConnRecord, away: boolean): Queue {
    const q: Queue = { rec, away, confirmed: new Set(), watched: new Set(), watchesUser: false, frames: [], bytes: 0 };
    this.queues.set(rec.id, q);
    return q;
  }

  private watchAll(rec: ConnRecord, away: boolean): void {
    const q = this.queues.get(rec.id) ?? this.create(rec, away);
    q.away = away;
    q.confirmed.clear();
    for (const c of rec.channels) this.watch(q, c);
    if (!q.watchesUser && rec.user !== null) {
      q.watchesUser = true;
      let set = this.byUser.get(rec.user);
      if (!set) this.byUser.set(rec.user, (set = new Set()));
      set.add(q);
    }
  }

  private watch(q: Queue, channel: string): void {
    if (q.watched.has(channel)) return;
    q.watched.add(channel);
    let set = this.byChannel.get(channel);
    if (!set) this.byChannel.set(channel, (set = new Set()));
    set.add(q);
  }

  private unwatch(q: Queue, channel: string): void {
    if (!q.watched.delete(channel)) return;
    const set = this.byChannel.get(channel);
    set?.delete(q);
    if (set?.size === 0) this.byChannel.delete(channel);
  }

  private unwatchUser(q: Queue): void {
    if (!q.watchesUser || q.rec.user === null) return;
    q.watchesUser = false;
    const set = this.byUser.get(q.rec.user);
    set?.delete(q);
    if (set?.size === 0) this.byUser.delete(q.rec.user);
  }

  private keep(q: Queue, pred: (f: QueuedFrame) => boolean): void {
    const kept = q.frames.filter(pred);
    if (kept.length === q.frames.length) return;
    let bytes = 0;
    for (const f of kept) bytes += f.push.length;
    this.totalBytes -= q.bytes - bytes;
    q.bytes = bytes;
    q.frames = kept;
  }

  private append(q: Queue, f: QueuedFrame): void {
    const n = f.push.length;
    if (q.frames.length >= MAX_FRAMES || q.bytes + n > this.maxBytes || this.totalBytes + n > this.maxTotalBytes) {
      this.destroy(q);
      this.onOverflow(q.rec);
      return;
    }
    q.frames.push(f);
    q.bytes += n;
    this.totalBytes += n;
  }

  private destroy(q: Queue): void {
    if (this.queues.get(q.rec.id) !== q) return;
    for (const c of [...q.watched]) this.unwatch(q, c);
    this.unwatchUser(q);
    this.totalBytes -= q.bytes;
    q.frames = [];
    q.bytes = 0;
    this.queues.delete(q.rec.id);
  }
}
